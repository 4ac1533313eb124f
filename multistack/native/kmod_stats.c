/* Counter names and descriptions of the kernel backend (multistack/kernel.py), built from
 * MS_STAT_LIST in kmod/include/uapi/multistack.h like the module's own
 * table, so Python has no list of its own. */
#include "kmod.h"

/* Every index fits the counter arrays of struct ms_stats. */
#define MS_STAT_FITS(NAME, index, name, doc) \
	_Static_assert((index) < MS_STAT_MAX, "MS_STAT_" #NAME);
MS_STAT_LIST(MS_STAT_FITS)
#undef MS_STAT_FITS

const char *ms_stat_name(unsigned int i)
{
	/* A switch, so that an index given twice does not compile. */
	switch (i) {
#define MS_STAT_CASE(NAME, index, name, doc) case MS_STAT_##NAME: return name;
	MS_STAT_LIST(MS_STAT_CASE)
#undef MS_STAT_CASE
	}
	return NULL;
}

const char *ms_stat_doc(unsigned int i)
{
	switch (i) {
#define MS_STAT_CASE(NAME, index, name, doc) case MS_STAT_##NAME: return doc;
	MS_STAT_LIST(MS_STAT_CASE)
#undef MS_STAT_CASE
	}
	return NULL;
}
