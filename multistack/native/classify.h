#ifndef MULTISTACK_NATIVE_CLASSIFY_H
#define MULTISTACK_NATIVE_CLASSIFY_H

/* The kernel module's frame classifier, unchanged: the header is the same
 * file multistack.ko compiles (kmod/include is on the include path). */
#include <multistack_classify.h>

#endif
