/*-------------------------------------------------------------------------
 *
 * findings.c
 *		This backend's findings: one per (check, lifetime, library, context
 *		path), updated in place as the workload goes on, and published to
 *		the shared ring.
 *
 * Keeping findings in the backend (and not only in the shared ring) is what
 * lets end() return everything this backend found since begin() whatever
 * the ring's state, and what turns "the same leak seen in 1000 statements"
 * into one finding with a rate instead of 1000 rows.
 *
 * A finding is written to the ring when it is first published and again
 * whenever it changed since; every row carries the finding's id, so readers
 * keep the last row of each id.  Publishing happens at safe points only
 * (statement boundaries, end(), flush_violations(), run_scenario's end,
 * backend exit): the judgments that update findings run inside the
 * allocator and must not take locks.
 *
 * Severity follows the reference tool: INFO from min_leak_bytes, WARNING
 * above warning_bytes, ERROR above error_bytes.  The callers decide what
 * may be more than INFO (a cache never is).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "tcop/tcopprot.h"
#include "utils/timestamp.h"

#include "base/base.h"

/* findings one backend keeps; more are counted and said so */
#define MC_MAX_FINDINGS 512

typedef struct McFindingSlot
{
	uint8		check;
	uint8		lifetime;
	int16		lib;
	char		path[MC_PATH_LEN];
	McViolation v;
	uint8		published_severity;
	bool		published;
	bool		dirty;
} McFindingSlot;

static McFindingSlot *slots = NULL;
static int	nslots = 0;
static int64 overflow = 0;
static int32 next_id = 0;

McSeverity
mc_severity_for(int64 bytes)
{
	if (bytes > (int64) mc_error_bytes)
		return MC_SEV_ERROR;
	if (bytes > (int64) mc_warning_bytes)
		return MC_SEV_WARNING;
	return MC_SEV_INFO;
}

/*
 * The finding for key, created (zeroed but for its identity) if new.
 * Returns NULL when the table is full; the overflow is counted.
 */
McViolation *
mc_finding_get(const McFindingKey *key, bool *created)
{
	int			i;
	McFindingSlot *s;

	*created = false;
	if (slots == NULL)
	{
		slots = calloc(MC_MAX_FINDINGS, sizeof(McFindingSlot));
		if (slots == NULL)
			return NULL;
	}
	for (i = 0; i < nslots; i++)
	{
		s = &slots[i];
		if (s->check == key->check && s->lifetime == key->lifetime &&
			s->lib == key->lib && strcmp(s->path, key->path) == 0)
			return &s->v;
	}
	if (nslots >= MC_MAX_FINDINGS)
	{
		overflow++;
		return NULL;
	}
	s = &slots[nslots++];
	memset(s, 0, sizeof(*s));
	s->check = key->check;
	s->lifetime = key->lifetime;
	s->lib = key->lib;
	mc_strlcpy(s->path, key->path, sizeof(s->path));
	s->v.finding_id = ++next_id;
	s->v.check = key->check;
	s->v.lifetime = key->lifetime;
	s->v.bytes_per_iter = -1;
	s->v.rate_bytes = -1;
	s->v.nest_level = 0;
	*created = true;
	return &s->v;
}

/*
 * The finding of this check, lifetime, library (MC_NO_LIB for none) and
 * context path or resource name: what every check calls before it updates a
 * finding.  *created (may be NULL) says whether it is new; NULL when the
 * table is full (counted).
 */
McViolation *
mc_finding_for(McCheck check, McLifetime lifetime, int lib, const char *path,
			   bool *created)
{
	McFindingKey key;
	bool		isnew;

	key.check = (uint8) check;
	key.lifetime = (uint8) lifetime;
	key.lib = (int16) lib;
	key.path = path;
	return mc_finding_get(&key, created != NULL ? created : &isnew);
}

/* the caller updated v: stamp it, remember to publish it */
void
mc_finding_changed(McViolation *v)
{
	McFindingSlot *s = (McFindingSlot *) ((char *) v - offsetof(McFindingSlot, v));

	s->dirty = true;
	v->pid = MyProcPid;
	v->ts = GetCurrentTimestamp();
	if (v->query[0] == '\0' && debug_query_string != NULL)
		mc_strlcpy(v->query, debug_query_string, MC_QUERY_LEN);
}

/*
 * Write changed findings to the shared ring: at report points (all) every
 * changed one, in between only those that are new or more severe.  Only at
 * safe points: takes the ring's lock.
 */
void
mc_findings_publish(bool all)
{
	int			i;

	for (i = 0; i < nslots; i++)
	{
		McFindingSlot *s = &slots[i];
		McViolation copy;

		if (!s->dirty)
			continue;
		/* between report points only what is new or got worse */
		if (!all && s->published && s->v.severity <= s->published_severity)
			continue;
		copy = s->v;
		if (mc_ring_record(&copy))
		{
			s->published = true;
			s->published_severity = s->v.severity;
		}
		s->dirty = false;
	}
}

/*
 * begin(): publish what was found so far, then start afresh.  Coverage gaps
 * stay: what cannot be measured is still not measured in the new window.
 */
void
mc_findings_window_start(void)
{
	int			i;
	int			kept = 0;

	mc_findings_publish(false);
	for (i = 0; i < nslots; i++)
		if (slots[i].check == MC_CHECK_COVERAGE_GAP)
			slots[kept++] = slots[i];
	nslots = kept;
	overflow = 0;
}

int
mc_findings_gaps(void)
{
	int			i;
	int			n = 0;

	for (i = 0; i < nslots; i++)
		if (slots[i].check == MC_CHECK_COVERAGE_GAP)
			n++;
	return n;
}

int
mc_findings_count(void)
{
	return nslots;
}

const McViolation *
mc_finding_at(int i, bool *in_window)
{
	*in_window = true;
	return (i >= 0 && i < nslots) ? &slots[i].v : NULL;
}

int64
mc_findings_overflow(void)
{
	return overflow;
}

/*
 * Something could not be measured: say so as a finding, so that silence
 * never passes for "clean".  Safe anywhere (no allocation, no lock).
 */
void
mc_record_gap(const char *lib, const char *what, const char *detail)
{
	McViolation *v;
	bool		created;
	char		path[MC_PATH_LEN];

	snprintf(path, sizeof(path), "%s%s%s", what, lib ? ": " : "", lib ? lib : "");
	v = mc_finding_for(MC_CHECK_COVERAGE_GAP, MC_LIFE_UNKNOWN, MC_NO_LIB, path, &created);
	if (v == NULL || !created)
		return;
	v->severity = MC_SEV_WARNING;
	v->phase = MC_PHASE_OTHER;
	mc_strlcpy(v->context_name, what, MC_NAME_LEN);
	mc_strlcpy(v->context_path, path, MC_PATH_LEN);
	if (lib != NULL)
	{
		const char *slash = strrchr(lib, '/');

		mc_strlcpy(v->source_lib, slash ? slash + 1 : lib, MC_LIB_LEN);
	}
	snprintf(v->detail, MC_DETAIL_LEN, "not measured: %s", detail);
	v->occurrences = 1;
	mc_finding_changed(v);
}

/* more foreign libraries were loaded than the table holds: say so once */
void
mc_note_foreign_overflow(void)
{
	const char *path = mc_foreign_overflow();

	if (path != NULL)
		mc_record_gap(path, "library",
					  "more foreign libraries are loaded than pg_ext_memcheck can follow");
}

/*
 * Add a call site (a return address, 0 when not known) and what it
 * allocated to v's sites, which stay the MC_MAX_SITES largest, largest
 * first.  The site's own library names it; lib when it lies in none.
 */
void
mc_finding_add_site(McViolation *v, uintptr_t site, int lib, int64 bytes, int64 count)
{
	int			l = site != 0 ? mc_lib_of_address((void *) site) : MC_NO_LIB;
	McSite		s;
	int			k;

	memset(&s, 0, sizeof(s));
	if (l != MC_NO_LIB)
	{
		lib = l;
		s.offset = (uint64) (site - mc_lib_base(l));
	}
	mc_strlcpy(s.lib, mc_lib_name(lib), MC_LIB_LEN);
	s.bytes = bytes;
	s.count = count;
	for (k = v->nsites; k > 0 && v->sites[k - 1].bytes < bytes; k--)
		if (k < MC_MAX_SITES)
			v->sites[k] = v->sites[k - 1];
	if (k < MC_MAX_SITES)
	{
		v->sites[k] = s;
		if (v->nsites < MC_MAX_SITES)
			v->nsites++;
	}
}
