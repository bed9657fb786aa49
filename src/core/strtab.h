/*
 * strtab.h - sentences kept as one string, each ended by its NUL: 4 bytes
 * less a sentence than a table of pointers, for messages that are looked
 * up on an error path, never on a hot one.
 */
#ifndef DUET_STRTAB_H
#define DUET_STRTAB_H

#include <string.h>

/* The n-th sentence of `tab` (from 0), which has more than n. */
static inline const char *duet_strtab_at(const char *tab, unsigned int n)
{
	while (n--)
		tab += strlen(tab) + 1;
	return tab;
}

#endif /* DUET_STRTAB_H */
