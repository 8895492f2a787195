/*
 * jitter: the randomness that spreads a fleet's timers (first probes, retries,
 * refreshes) so that tasks started together do not act in step. No
 * cryptographic quality is needed, only a different seed per process.
 */
#ifndef SGPROBE_JITTER_H
#define SGPROBE_JITTER_H

#include <stdint.h>

/** The next number of the sequence in `*state` (splitmix64; any seed, 0 included). */
uint64_t jitter_next(uint64_t *state);

/** A number in [0, max], from `*state`. */
uint64_t jitter_upto(uint64_t *state, uint64_t max);

#endif
