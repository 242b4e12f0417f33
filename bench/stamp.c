/*
 * The start-lag row of bench/perf.ts: the container's program, which
 * writes the CLOCK_MONOTONIC time it began (ns) to the file it is given.
 * Node's process.hrtime reads the same clock.
 */
#include <stdio.h>
#include <time.h>

int main(int argc, char **argv)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	if (argc != 2)
		return 2;
	FILE *f = fopen(argv[1], "w");
	if (!f)
		return 1;
	fprintf(f, "%lld\n", (long long)t.tv_sec * 1000000000LL + t.tv_nsec);
	return fclose(f) ? 1 : 0;
}
