/*
 * duet/api.h - DUET_API marks each function and object of duet's public
 * interface. The library is compiled with hidden visibility, so these are
 * all that libduet.so exports: a program cannot come to depend on an
 * internal function (rpmsg_dispatch, duet_vq_fault, ...), and the library's
 * own calls to its internals need no run-time indirection. In a static link
 * the attribute changes nothing.
 */
#ifndef DUET_API_H
#define DUET_API_H

#if defined(__GNUC__) || defined(__clang__)
#define DUET_API __attribute__((visibility("default")))
#else
#define DUET_API
#endif

#endif /* DUET_API_H */
