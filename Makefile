# duet - the two commands of the README, and the rest.
#   make demo    build, then run the two-process demo
#   make test    build and run every test: gcc, clang, ASan+UBSan, TSan, MSan,
#                a short fuzz run, the freestanding cross builds, the install
#   make bench   benchmarks (never part of make test)
#   make fuzz    fuzz for FUZZ_SECONDS (default 300) per target
MAKEFLAGS += --no-print-directory
B ?= build
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
FUZZ_RUNS ?= 300000
FUZZ_SECONDS ?= 300
FUZZ_TARGETS = fuzz_vq_device fuzz_rsc fuzz_rpmsg fuzz_rpmsg_device fuzz_rptun

cmake_build = cmake -S . -B $(B)/$(1) -DCMAKE_C_COMPILER=$(2) $(3) >/dev/null && \
	cmake --build $(B)/$(1) -j$(JOBS)
ctest_run = cd $(B)/$(1) && ctest --output-on-failure -j$(JOBS)

.PHONY: all build demo test deps test-gcc test-clang test-asan test-tsan test-msan test-minimal \
	test-soak test-fuzz test-cross test-install bench fuzz clean

all: build

build: deps
	$(call cmake_build,gcc,gcc,-DCMAKE_BUILD_TYPE=Release -DDUET_LTO=ON)

deps:
	@sh scripts/deps.sh test

demo: build
	$(B)/gcc/duet demo

test: deps test-gcc test-clang test-asan test-tsan test-soak test-msan test-minimal test-fuzz test-cross test-install
	@echo "make test: all suites passed"

# With link-time optimisation, as a speed-minded user links: the suite runs
# on the code with the virtqueue inlined into its callers, and test-install
# links the (fat) static library into programs built without it.
test-gcc:
	$(call cmake_build,gcc,gcc,-DCMAKE_BUILD_TYPE=Release -DDUET_LTO=ON)
	$(call ctest_run,gcc)

test-clang:
	$(call cmake_build,clang,clang,-DCMAKE_BUILD_TYPE=RelWithDebInfo)
	$(call ctest_run,clang)

test-asan:
	$(call cmake_build,asan,gcc,-DCMAKE_BUILD_TYPE=Debug -DDUET_SANITIZE=address$(,)undefined -DDUET_BUILD_BENCH=OFF)
	$(call ctest_run,asan)

test-tsan:
	$(call cmake_build,tsan,clang,-DCMAKE_BUILD_TYPE=RelWithDebInfo -DDUET_SANITIZE=thread -DDUET_BUILD_BENCH=OFF)
	$(call ctest_run,tsan)

# The two-process link under faults in the middle of traffic (kill -9 of
# either side, reset, panic), many times, then under a hostile peer's
# garbage written into the table and rings (--faults scribble), with the
# ASan + UBSan and the TSan builds' duet (scripts/soak.py: a fixed seed
# here, any with --seed).
SOAK_CYCLES ?= 100
test-soak: test-asan test-tsan
	python3 scripts/soak.py --cycles $(SOAK_CYCLES) --seed 1 --bin $(B)/asan/duet
	python3 scripts/soak.py --cycles $(SOAK_CYCLES) --seed 2 --bin $(B)/tsan/duet
	python3 scripts/soak.py --cycles 40 --seed 3 --bin $(B)/asan/duet --faults scribble
	python3 scripts/soak.py --cycles 40 --seed 4 --bin $(B)/tsan/duet --faults scribble

# Reads of memory never written: the library and the tests instrumented
# (libc through MemorySanitizer's interceptors); the virtqueue suite runs a
# ring over a region marked unwritten (tests/vq_harness.c).
test-msan:
	$(call cmake_build,msan,clang,-DCMAKE_BUILD_TYPE=RelWithDebInfo -DDUET_SANITIZE=memory -DDUET_BUILD_BENCH=OFF)
	$(call ctest_run,msan)

# Every driver off: the frameworks still build and pass. Then the frameworks
# off too: the virtqueue alone; and the virtio framework without vhost
# (built only: the shared library links with no symbol missing). And rpmsg with one role: the library holds
# none of the other role's code (rpmsg_driver.c / rpmsg_device.c); these two
# are built for size (-Os), as a small core would be, so the suites also run
# without the virtqueue's short paths (DUET_FAST_PATHS 0).
NO_DRIVERS = -DDUET_DRIVER_VIRTIO_RNG=OFF -DDUET_DRIVER_VHOST_RNG=OFF
test-minimal:
	$(call cmake_build,rpmsg-driver,gcc,-DCMAKE_BUILD_TYPE=MinSizeRel -DDUET_DRIVER_VHOST_RPMSG=OFF -DDUET_BUILD_BENCH=OFF)
	$(call ctest_run,rpmsg-driver)
	! nm $(B)/rpmsg-driver/libduet.a | grep -w 'vhost_rpmsg_driver'
	$(call cmake_build,rpmsg-device,gcc,-DCMAKE_BUILD_TYPE=MinSizeRel -DDUET_DRIVER_VIRTIO_RPMSG=OFF -DDUET_BUILD_BENCH=OFF)
	$(call ctest_run,rpmsg-device)
	! nm $(B)/rpmsg-device/libduet.a | grep -w 'virtio_rpmsg_driver'
	$(call cmake_build,nodrivers,gcc,-DCMAKE_BUILD_TYPE=Release $(NO_DRIVERS) -DDUET_BUILD_BENCH=OFF)
	$(call ctest_run,nodrivers)
	$(call cmake_build,minimal,gcc,-DCMAKE_BUILD_TYPE=Release $(NO_DRIVERS) -DDUET_VIRTIO=OFF -DDUET_VHOST=OFF -DDUET_BUILD_BENCH=OFF)
	$(call ctest_run,minimal)
	$(call cmake_build,virtio-only,gcc,-DCMAKE_BUILD_TYPE=Release -DDUET_VHOST=OFF -DDUET_DRIVER_VHOST_RNG=OFF -DDUET_DRIVER_VHOST_RPMSG=OFF -DDUET_BUILD_BENCH=OFF)

$(B)/fuzz/.built: FORCE
	$(call cmake_build,fuzz,clang,-DCMAKE_BUILD_TYPE=RelWithDebInfo -DDUET_BUILD_FUZZ=ON -DDUET_SANITIZE=address$(,)undefined -DDUET_BUILD_TESTS=OFF -DDUET_BUILD_BENCH=OFF)
	@touch $@
FORCE:

test-fuzz: $(B)/fuzz/.built
	@for f in $(FUZZ_TARGETS); do \
		echo "fuzz $$f: $(FUZZ_RUNS) runs"; \
		rm -rf $(B)/fuzz/scratch-$$f && mkdir -p $(B)/fuzz/scratch-$$f; \
		$(B)/fuzz/fuzz/$$f -runs=$(FUZZ_RUNS) -seed=1 $(B)/fuzz/scratch-$$f \
			$$(ls -d fuzz/corpus/$$f 2>/dev/null) 2>&1 | tail -1 || exit 1; \
	done

fuzz: $(B)/fuzz/.built
	@for f in $(FUZZ_TARGETS); do \
		mkdir -p fuzz-corpus/$$f; \
		echo "fuzz $$f: $(FUZZ_SECONDS) s, corpus fuzz-corpus/$$f"; \
		$(B)/fuzz/fuzz/$$f -max_total_time=$(FUZZ_SECONDS) fuzz-corpus/$$f $$(ls -d fuzz/corpus/$$f 2>/dev/null) || exit 1; \
	done

# The core for Cortex-M4 and RV32 (built, sized), then run on a Cortex-M4
# (QEMU's mps2-an386) with the bare-metal port: built for size (the
# virtqueue's checked paths), and for speed (its short paths). Then the
# same test as a Linux program on a big-endian core (32-bit PowerPC) and
# on 64-bit Arm (QEMU's user mode), and on the host: one wire on all.
test-cross:
	@sh scripts/cross-size.sh $(B)/cross
	@sh tests/cortex-m/run.sh $(B)/cortex-m
	@OPT=-O2 sh tests/cortex-m/run.sh $(B)/cortex-m-O2
	@sh tests/cortex-m/run-linux.sh $(B)/linux-cores

test-install: test-gcc
	rm -rf $(B)/stage $(B)/consumer
	cmake --install $(B)/gcc --prefix $(CURDIR)/$(B)/stage >/dev/null
	sh scripts/check-symbols.sh -I $(B)/stage/include $(B)/stage/lib/libduet.a $(B)/stage/lib/libduet.so
	cmake -S tests/install -B $(B)/consumer -DCMAKE_PREFIX_PATH=$(CURDIR)/$(B)/stage >/dev/null
	cmake --build $(B)/consumer -j$(JOBS) >/dev/null
	LD_LIBRARY_PATH=$(CURDIR)/$(B)/stage/lib $(B)/consumer/consumer_shared
	$(B)/consumer/consumer_static
	$(B)/consumer/consumer_cxx
	LD_LIBRARY_PATH=$(CURDIR)/$(B)/stage/lib $(B)/consumer/rpmsg_echo
	PKG_CONFIG_PATH=$(CURDIR)/$(B)/stage/lib/pkgconfig sh -c \
		'cc tests/install/consumer.c -DDUET_PACKAGE_VERSION=\"$$(pkg-config --modversion duet)\" \
		$$(pkg-config --cflags --libs duet) -o $(B)/consumer/consumer_pc' && \
		LD_LIBRARY_PATH=$(CURDIR)/$(B)/stage/lib $(B)/consumer/consumer_pc
	rm -rf $(B)/vendor
	cmake -S tests/vendor -B $(B)/vendor >/dev/null
	cmake --build $(B)/vendor -j$(JOBS) >/dev/null
	$(B)/vendor/consumer_vendored

bench:
	@sh scripts/deps.sh bench
	$(call cmake_build,bench,gcc,-DCMAKE_BUILD_TYPE=Release -DCMAKE_C_FLAGS=-g -DDUET_BUILD_TESTS=OFF)
	$(call cmake_build,bench-lto,gcc,-DCMAKE_BUILD_TYPE=Release -DCMAKE_C_FLAGS=-g -DDUET_BUILD_TESTS=OFF -DDUET_LTO=ON)
	$(B)/bench/bench/bench_vq_cycle
	sh bench/callgrind-cycle.sh $(B)/bench/bench/bench_vq_cycle
	sh bench/callgrind-cycle.sh $(B)/bench-lto/bench/bench_vq_cycle
	$(B)/bench/bench/bench_rpmsg rtt
	$(B)/bench/bench/bench_rpmsg stream
	$(B)/bench/bench/bench_rpmsg duplex
	$(B)/bench/bench/bench_rpmsg oneway
	$(B)/bench/bench/bench_floor hostile
	sh bench/callgrind-rpmsg.sh $(B)/bench/bench/bench_rpmsg_ir
	sh bench/callgrind-rpmsg.sh $(B)/bench-lto/bench/bench_rpmsg_ir
	sh bench/callgrind-link.sh $(B)/bench/bench/bench_rpmsg
	$(B)/bench/bench/bench_rpmsg idle
	sh bench/size.sh $(B)/size
	sh bench/cortex-m.sh $(B)/bench-cortex-m
	sh bench/cortex-m-floor.sh $(B)/bench-cortex-m-floor
	sh bench/cortex-m-profile.sh $(B)/bench-cortex-m-profile
	OPT=-Os sh bench/cortex-m-profile.sh $(B)/bench-cortex-m-profile

clean:
	rm -rf $(B)

, := ,
