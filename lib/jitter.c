/*
 * jitter: splitmix64 (include/sgprobe/jitter.h).
 */
#include "sgprobe/jitter.h"

uint64_t jitter_next(uint64_t *state)
{
	uint64_t z = (*state += UINT64_C(0x9e3779b97f4a7c15));

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

uint64_t jitter_upto(uint64_t *state, uint64_t max)
{
	uint64_t r = jitter_next(state);

	return max == UINT64_MAX ? r : r % (max + 1);
}
