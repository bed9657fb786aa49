/* duet_version: the library's own DUET_VERSION, compiled in. */
#include <duet/version.h>

unsigned long duet_version(void)
{
	return DUET_VERSION;
}
