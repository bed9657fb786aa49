/*
 * errno.h for toolchains without a C library (riscv64-unknown-elf here).
 * The core only needs the constants; values are Linux's, which NuttX and
 * newlib share for these names.
 */
#ifndef DUET_FREESTANDING_ERRNO_H
#define DUET_FREESTANDING_ERRNO_H

#define EPERM 1
#define ENOENT 2
#define EIO 5
#define EAGAIN 11
#define ENOMEM 12
#define EFAULT 14
#define EBUSY 16
#define EEXIST 17
#define ENODEV 19
#define EINVAL 22
#define ENOSPC 28
#define ERANGE 34
#define ELOOP 40
#define EPROTO 71
#define EOVERFLOW 75
#define EILSEQ 84
#define EMSGSIZE 90
#define ENOTSUP 95
#define ENOTCONN 107
#define ETIMEDOUT 110

#endif
