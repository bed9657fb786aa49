/*
 * duet/atomic.h - how the public headers spell an atomic member or
 * parameter, so that C++ can include them too: DUET_ATOMIC(T) is C11's
 * _Atomic(T), and std::atomic<T> in C++, which gcc and clang lay out the
 * same for the lock-free types duet uses (integers, bool, pointers).
 * duet's own sources, being C, use _Atomic directly.
 */
#ifndef DUET_ATOMIC_H
#define DUET_ATOMIC_H

#ifdef __cplusplus
#include <atomic>
#define DUET_ATOMIC(T) std::atomic<T>
#else
#include <stdatomic.h>
#define DUET_ATOMIC(T) _Atomic(T)
#endif

#endif /* DUET_ATOMIC_H */
