/*
 * duet/version.h - the version of the duet headers a program is built with.
 * The build reads it from here (CMakeLists.txt), so the library, its
 * package files and these macros cannot disagree.
 */
#ifndef DUET_VERSION_H
#define DUET_VERSION_H

#include <duet/api.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DUET_VERSION_MAJOR 0
#define DUET_VERSION_MINOR 1
#define DUET_VERSION_PATCH 0
#define DUET_VERSION_STR_(major, minor, patch) #major "." #minor "." #patch
#define DUET_VERSION_STR(major, minor, patch) DUET_VERSION_STR_(major, minor, patch)
#define DUET_VERSION_STRING                                                     \
	DUET_VERSION_STR(DUET_VERSION_MAJOR, DUET_VERSION_MINOR, DUET_VERSION_PATCH)

/* The version as one number, for comparisons: 0x00MMmmpp. */
#define DUET_VERSION_NUMBER(major, minor, patch)                                \
	(((unsigned long)(major) << 16) | ((unsigned long)(minor) << 8) | (unsigned long)(patch))
#define DUET_VERSION                                                            \
	DUET_VERSION_NUMBER(DUET_VERSION_MAJOR, DUET_VERSION_MINOR, DUET_VERSION_PATCH)

/*
 * The version of the library linked at run time, as DUET_VERSION makes it.
 * A program loading libduet.so can compare it with the DUET_VERSION it was
 * built with: while the major version is 0, a different minor version may
 * lay out the public structs differently.
 */
DUET_API unsigned long duet_version(void);

#ifdef __cplusplus
}
#endif

#endif /* DUET_VERSION_H */
