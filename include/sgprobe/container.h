/*
 * container: from a member back to the struct that embeds it (STYLE.md rule 4),
 * the one definition every module and test uses.
 */
#ifndef SGPROBE_CONTAINER_H
#define SGPROBE_CONTAINER_H

#include <stddef.h>

/** The `type` whose member `member` is at `ptr`. */
#define container_of(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

#endif
