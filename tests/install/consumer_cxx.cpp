// A C++ consumer of an installed duet: every public header included, then
// rpmsg both ways round over the loopback, and the atomic members the C
// library writes read back from C++ (the layouts must agree).
#include <duet/api.h>
#include <duet/atomic.h>
#include <duet/byteorder.h>
#include <duet/doorbell.h>
#include <duet/heap.h>
#include <duet/link.h>
#include <duet/list.h>
#include <duet/loopback.h>
#include <duet/port.h>
#include <duet/rng.h>
#include <duet/rpmsg.h>
#include <duet/rpmsg_ping.h>
#include <duet/rptun.h>
#include <duet/rsc.h>
#include <duet/rsc_table.h>
#include <duet/version.h>
#include <duet/vhost.h>
#include <duet/virtio.h>
#include <duet/virtio_ring.h>
#include <duet/virtqueue.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>

namespace {

struct inbox {
	std::string last;
	uint32_t src = 0;
};

int receive(rpmsg_endpoint *ept, void *data, size_t len, uint32_t src, void *priv)
{
	(void)ept;
	auto *in = static_cast<inbox *>(priv);
	in->last.assign(static_cast<const char *>(data), len);
	in->src = src;
	return 0;
}

bool fail(const char *what)
{
	std::fprintf(stderr, "consumer_cxx: %s\n", what);
	return false;
}

// The doorbell lives in memory two sides share: C rings it, C++ reads it.
bool doorbell_layout()
{
	duet_doorbell bell{};
	uint32_t ids[DUET_DOORBELL_IDS];

	if (!duet_doorbell_ring(&bell, 37) || bell.seq.load() != 1 ||
	    bell.pending[1].load() != 1u << (37 - 32))
		return fail("a doorbell rung by C reads wrong from C++");
	if (duet_doorbell_take(&bell, ids) != 1 || ids[0] != 37 || bell.pending[1].load() != 0)
		return fail("a doorbell's id did not come back");
	return true;
}

bool rpmsg_both_ways()
{
	static const rpmsg_virtio_config cfg = { 512, 256 };
	duet_loopback_config lc{};
	duet_loopback *lb = nullptr;
	inbox at_driver, at_device;
	rpmsg_endpoint a{}, b{};
	bool ok = false;

	lc.device_id = VIRTIO_ID_RPMSG;
	lc.features = 1u << VIRTIO_RPMSG_F_NS;
	lc.num_vrings = 2;
	lc.vring_num = 8;
	lc.vring_align = 16;
	lc.config_len = sizeof(cfg);
	lc.config = &cfg;
	lc.heap_size = 64 * 1024;
	if (duet_loopback_create(&lb, &lc) || virtio_register_driver(&virtio_rpmsg_driver) ||
	    vhost_register_driver(&vhost_rpmsg_driver))
		return fail("cannot set up the loopback and the rpmsg drivers");
	virtio_device *drv = duet_loopback_driver(lb), *dev = duet_loopback_device(lb);
	vhost_set_probe_period(1);
	if (virtio_register_device(drv) || vhost_register_device(dev))
		return fail("cannot register the devices");
	// The device side probes from the port's work queue.
	for (int i = 0; i < 5000 && !dev->priv; i++) {
		duet_loopback_poll(lb);
		std::this_thread::sleep_for(std::chrono::milliseconds(1));
	}
	auto *rdrv = static_cast<rpmsg_device *>(drv->priv);
	auto *rdev = static_cast<rpmsg_device *>(dev->priv);
	a.priv = &at_driver;
	b.priv = &at_device;
	if (!rdrv || !rdev || drv->bus_driver.load() != &virtio_rpmsg_driver) {
		fail("the devices were not bound (or their bound driver reads wrong from C++)");
	} else if (rpmsg_create_ept(&a, rdrv, "cxx", 2000, RPMSG_ADDR_ANY, receive, nullptr) ||
		   rpmsg_create_ept(&b, rdev, "cxx", 2001, RPMSG_ADDR_ANY, receive, nullptr)) {
		fail("cannot create the endpoints");
	} else {
		int sent_down = rpmsg_sendto(&a, "down", 4, 2001);
		while (duet_loopback_poll(lb) > 0)
			;
		int sent_up = rpmsg_sendto(&b, "up", 2, 2000);
		while (duet_loopback_poll(lb) > 0)
			;
		ok = sent_down == 4 && sent_up == 2 && at_device.last == "down" &&
		     at_device.src == 2000 && at_driver.last == "up" && at_driver.src == 2001;
		if (!ok)
			fail("a message did not arrive as sent");
		rpmsg_destroy_ept(&a);
		rpmsg_destroy_ept(&b);
	}
	virtio_unregister_device(drv);
	vhost_unregister_device(dev);
	virtio_unregister_driver(&virtio_rpmsg_driver);
	vhost_unregister_driver(&vhost_rpmsg_driver);
	duet_loopback_destroy(lb);
	return ok;
}

} // namespace

int main()
{
	if (duet_version() != DUET_VERSION) {
		std::fprintf(stderr, "consumer_cxx: library and headers of two versions\n");
		return 1;
	}
	if (!doorbell_layout() || !rpmsg_both_ways())
		return 1;
	std::puts("consumer_cxx: installed libduet works from C++");
	return 0;
}
