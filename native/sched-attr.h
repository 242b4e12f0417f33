/*
 * struct sched_attr as sched_setattr(2) and sched_getattr(2) take it
 * (SCHED_ATTR_SIZE_VER1), for the helper (init.c) and the checker; musl's
 * headers do not have it.
 */
#ifndef TSRUN_SCHED_ATTR_H
#define TSRUN_SCHED_ATTR_H

#include <stdint.h>

struct tsrun_sched_attr {
	uint32_t size, sched_policy;
	uint64_t sched_flags;
	int32_t sched_nice;
	uint32_t sched_priority;
	uint64_t sched_runtime, sched_deadline, sched_period;
	uint32_t sched_util_min, sched_util_max;
};

#endif
