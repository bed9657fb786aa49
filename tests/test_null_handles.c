/*
 * Every public call of the core, the transports and the host refuses a
 * NULL handle with its documented "nothing" answer (-EINVAL, false, 0,
 * NULL) instead of dereferencing it. A crash here fails the suite.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <duet/doorbell.h>
#include <duet/heap.h>
#include <duet/link.h>
#include <duet/loopback.h>
#include <duet/rptun.h>
#include <duet/rsc.h>
#include <duet/vhost.h>
#include <duet/virtio.h>
#include <duet/virtqueue.h>

static void test_virtqueue(void **state)
{
	struct virtqueue_buf vb[2] = { { NULL, 0, false } };
	struct virtqueue_state st;
	void *cookies[2];
	uint32_t lens[2] = { 0 }, u = 7;
	uint16_t heads[2] = { 0 };
	size_t n;

	(void)state;
	virtqueue_reset(NULL);
	assert_int_equal(virtqueue_add_buffer(NULL, vb, 1, 0, cookies), -EINVAL);
	assert_int_equal(virtqueue_add_one(NULL, cookies, 1, false, cookies), -EINVAL);
	assert_int_equal(virtqueue_add_bufs(NULL, cookies, 1, 1, false), -EINVAL);
	assert_int_equal(virtqueue_add_bufs_sized(NULL, cookies, lens, 1, false), -EINVAL);
	assert_null(virtqueue_get_buffer(NULL, &u, heads));
	assert_int_equal(virtqueue_get_buffers(NULL, cookies, lens, 2), -EINVAL);
	assert_null(virtqueue_get_available_buffer(NULL, heads, &u));
	assert_int_equal(virtqueue_get_available_buffers(NULL, vb, heads, 2), -EINVAL);
	assert_int_equal(vhost_get_vq_buffers(NULL, vb, 2, &n), -EINVAL);
	assert_int_equal(virtqueue_add_consumed_buffer(NULL, 0, 0), -EINVAL);
	assert_int_equal(virtqueue_add_consumed_buffers(NULL, heads, lens, 1), -EINVAL);
	virtqueue_kick(NULL);
	assert_int_equal(virtqueue_enable_cb(NULL), -EINVAL);
	virtqueue_disable_cb(NULL);
	assert_int_equal(virtqueue_published_idx(NULL), 0);
	assert_int_equal(virtqueue_peer_idx(NULL), 0);
	assert_int_equal(virtqueue_taken_idx(NULL), 0);
	virtqueue_notification(NULL);
	assert_false(virtqueue_poll(NULL));
	virtqueue_prefetch_next(NULL);
	assert_false(virtqueue_prefetch_arrived(NULL));
	assert_int_equal(virtqueue_prefetch_arrived_many(NULL, 1), 0);
	assert_int_equal(virtqueue_poll_many(NULL, 1, &u), 0);
	assert_int_equal(u, 0);
	assert_false(virtqueue_poll_pending(NULL, 1));
	virtqueue_prefetch_many(NULL, 1);
	memset(&st, 0xff, sizeof(st));
	virtqueue_get_state(NULL, &st);
	assert_int_equal(st.size, 0);
	assert_false(st.broken);
	virtqueue_get_state(NULL, NULL);
	assert_int_equal(virtqueue_get_fault(NULL), VIRTQUEUE_FAULT_NONE);
	assert_false(virtqueue_is_broken(NULL));
	assert_int_equal(virtqueue_get_vring_size(NULL), 0);
	assert_false(virtqueue_full(NULL));
	assert_true(virtqueue_empty(NULL));
	assert_int_equal(virtqueue_init(NULL, 0, NULL, NULL), -EINVAL);
}

static void test_buses(void **state)
{
	(void)state;
	assert_int_equal(virtio_register_driver(NULL), -EINVAL);
	assert_int_equal(virtio_unregister_driver(NULL), -EINVAL);
	assert_int_equal(virtio_register_device(NULL), -EINVAL);
	assert_int_equal(virtio_unregister_device(NULL), -EINVAL);
	assert_int_equal(virtio_negotiate_features(NULL, 0, NULL), -EINVAL);
	assert_int_equal(vhost_register_driver(NULL), -EINVAL);
	assert_int_equal(vhost_unregister_driver(NULL), -EINVAL);
	assert_int_equal(vhost_register_device(NULL), -EINVAL);
	assert_int_equal(vhost_unregister_device(NULL), -EINVAL);
}

static void test_heap_doorbell_rsc(void **state)
{
	uint32_t ids[DUET_DOORBELL_IDS] = { 0 };
	uint8_t table[64] = { 0 };
	struct duet_doorbell bell;

	(void)state;
	assert_null(duet_heap_alloc(NULL, 8, 0));
	assert_int_equal(duet_heap_free(NULL, ids), -EINVAL);
	assert_int_equal(duet_heap_available(NULL), 0);
	assert_false(duet_heap_contains(NULL, ids, 1));
	duet_heap_destroy(NULL);
	assert_false(duet_doorbell_ring(NULL, 1));
	assert_false(duet_doorbell_wake(NULL, 1));
	assert_int_equal(duet_doorbell_take(NULL, ids), 0);
	memset(&bell, 0, sizeof(bell));
	assert_int_equal(duet_doorbell_take(&bell, NULL), 0);
	assert_false(duet_doorbell_wait(NULL, 0, 0, DUET_DOORBELL_FOREVER));
	assert_int_equal(duet_rsc_build(NULL, 0, NULL, 0, 0), -EINVAL);
	assert_int_equal(duet_rsc_carveouts_size(NULL, 1), 0);
	assert_int_equal(duet_rsc_parse(NULL, 0, 0, NULL, NULL), -EINVAL);
	assert_int_equal(duet_rsc_parse(table, sizeof(table), 0, NULL, NULL), -EINVAL);
}

static void test_rptun(void **state)
{
	(void)state;
	assert_int_equal(duet_rptun_create(NULL, NULL, NULL), -EINVAL);
	assert_int_equal(duet_rptun_start(NULL), -EINVAL);
	assert_int_equal(duet_rptun_stop(NULL), -EINVAL);
	assert_false(duet_rptun_running(NULL));
	assert_false(duet_rptun_ready(NULL));
	duet_rptun_destroy(NULL);
	assert_int_equal(duet_rptun_boot(NULL), -EINVAL);
	assert_int_equal(duet_rptun_shutdown(NULL), -EINVAL);
	assert_int_equal(duet_rptun_reset(NULL), -EINVAL);
	assert_int_equal(duet_rptun_panic(NULL), -EINVAL);
	assert_string_equal(duet_rptun_local_cpuname(NULL), "");
	assert_string_equal(duet_rptun_remote_cpuname(NULL), "");
	duet_rptun_notify_all(NULL);
	duet_rptun_notified(NULL, 0);
	assert_int_equal(duet_rptun_check_peer(NULL), -EINVAL);
	assert_int_equal(duet_rptun_poll(NULL), -EINVAL);
	assert_int_equal(duet_rptun_prefetch_arrived(NULL), -EINVAL);
	assert_int_equal(duet_rptun_published(NULL), 0);
	assert_int_equal(duet_rptun_peer_published(NULL), 0);
	assert_int_equal(duet_rptun_taken(NULL), 0);
	assert_null(duet_rptun_priv(NULL));
	assert_int_equal(duet_rptun_num_vdevs(NULL), 0);
	assert_null(duet_rptun_vdev(NULL, 0));
	assert_int_equal(duet_rptun_prefetches(NULL), 0);
	assert_int_equal(duet_rptun_unknown_notifies(NULL), 0);
}

static void test_loopback_and_link(void **state)
{
	char buf[16] = "x";
	uint32_t rung = 7, wakes = 7;

	(void)state;
	assert_int_equal(duet_loopback_create(NULL, NULL), -EINVAL);
	duet_loopback_destroy(NULL);
	assert_null(duet_loopback_driver(NULL));
	assert_null(duet_loopback_device(NULL));
	assert_int_equal(duet_loopback_poll(NULL), -EINVAL);
	assert_int_equal(duet_loopback_check_peer(NULL), -EINVAL);
	assert_int_equal(duet_loopback_prefetches(NULL, 0), 0);
	assert_false(duet_loopback_prefetching(NULL, 0));
	assert_null(duet_loopback_rsc(NULL));
	assert_int_equal(duet_loopback_heap_available(NULL), 0);

	assert_int_equal(duet_link_open(NULL, NULL, 0, buf, sizeof(buf)), -EINVAL);
	assert_int_equal(duet_link_close(NULL, 0, buf, sizeof(buf)), -EINVAL);
	assert_int_equal(duet_link_command(NULL, DUET_LINK_CMD_RESET, 0, buf, sizeof(buf)),
			 -EINVAL);
	assert_false(duet_link_wait_peer(NULL, 0));
	assert_int_equal(duet_link_poll(NULL), -EINVAL);
	assert_int_equal(duet_link_backoffs(NULL), 0);
	assert_int_equal(duet_link_wait(NULL, 0), -EINVAL);
	assert_int_equal(duet_link_wake(NULL), -EINVAL);
	assert_false(duet_link_peer_up(NULL));
	assert_int_equal(duet_link_peer_pid(NULL), 0);
	assert_null(duet_link_rptun(NULL));
	assert_false(duet_link_stop_requested(NULL));
	assert_false(duet_link_ready(NULL));
	assert_int_equal(duet_link_describe(NULL, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "");
	duet_link_stats(NULL, &rung, &wakes);
	assert_int_equal(rung, 0);
	assert_int_equal(wakes, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_virtqueue),
		cmocka_unit_test(test_buses),
		cmocka_unit_test(test_heap_doorbell_rsc),
		cmocka_unit_test(test_rptun),
		cmocka_unit_test(test_loopback_and_link),
	};

	return cmocka_run_group_tests_name("NULL handles", tests, NULL, NULL);
}
