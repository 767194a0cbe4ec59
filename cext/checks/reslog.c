/*-------------------------------------------------------------------------
 *
 * reslog.c
 *		Turn PostgreSQL's own end-of-transaction resource-leak warnings into
 *		resource_leak findings.
 *
 * When a resource owner is released at commit with resources still held,
 * PostgreSQL warns (DSM segments, relcache, plancache, tuple descriptors,
 * snapshots, files, buffer pins, ...).  Up to 16 each kind had its own
 * message; from 17 there is one, "resource was not closed: %s".  We match
 * the untranslated message id, so the server's language does not matter.
 * The finding names the foreign libraries whose code ran in the transaction.
 *
 * This runs inside error processing: it never reports an error, allocates
 * nothing, and guards against re-entry.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/proc.h"
#include "utils/elog.h"

#include "checks/checks.h"

static emit_log_hook_type prev_emit_log_hook = NULL;
static bool in_emit_log_hook = false;

typedef struct McLeakMessage
{
	const char *prefix;			/* of the untranslated message id */
	const char *resource;		/* what leaked, for context_name */
} McLeakMessage;

static const McLeakMessage leak_messages[] = {
	{"resource was not closed: ", NULL},	/* 17+: resource named in the text */
	{"dynamic shared memory leak", "dynamic shared memory segment"},
	{"relcache reference leak", "relcache reference"},
	{"plancache reference leak", "plancache reference"},
	{"TupleDesc reference leak", "tupdesc reference"},
	{"Snapshot reference leak", "snapshot reference"},
	{"temporary file leak", "File"},
	{"cache reference leak", "catcache reference"},
	{"catcache list reference leak", "catcache list reference"},
	{"buffer refcount leak", "buffer pin"},
	{"WaitEventSet leak", "WaitEventSet"},
	{"cryptohash context", "cryptohash context"},
	{"hmac context", "hmac context"},
	{"JIT context leak", "JIT context"},
};

/* what 17+ prints after "resource was not closed: ", named as up to 16 */
static const McLeakMessage leak_kinds_17[] = {
	{"relation ", "relcache reference"},
	{"dynamic shared memory segment", "dynamic shared memory segment"},
	{"buffer", "buffer pin"},
	{"TupleDesc", "tupdesc reference"},
	{"tupdesc", "tupdesc reference"},
	{"snapshot", "snapshot reference"},
	{"Snapshot", "snapshot reference"},
	{"plan ", "plancache reference"},
	{"cache ", "catcache reference"},
	{"File ", "File"},
	{"temporary file", "File"},
	{"JIT", "JIT context"},
};

/* "resource was not closed: relation \"pg_class\"" -> "relcache reference" */
static void
mc_resource_from_message(const char *msg, char *buf, size_t len)
{
	const char *p = strstr(msg, "not closed: ");
	size_t		n = 0;

	p = p ? p + strlen("not closed: ") : msg;
	for (n = 0; n < lengthof(leak_kinds_17); n++)
		if (strncmp(p, leak_kinds_17[n].prefix, strlen(leak_kinds_17[n].prefix)) == 0)
		{
			mc_strlcpy(buf, leak_kinds_17[n].resource, len);
			return;
		}
	n = 0;
	while (p[n] != '\0' && n + 1 < len &&
		   !(p[n] == ' ' && (p[n + 1] == '(' ||
							 (p[n + 1] >= '0' && p[n + 1] <= '9') || p[n + 1] == '"')))
		n++;
	memcpy(buf, p, n);
	buf[n] = '\0';
}

/* the foreign libraries whose code ran lately, "a.so,b.so" */
static void
mc_ran_libraries(char *buf, size_t len)
{
	uint32		ran = mc_libs_ran();
	int			i;
	size_t		used = 0;

	buf[0] = '\0';
	for (i = 0; i < mc_lib_count() && i < 32 && used + 1 < len; i++)
		if (ran & ((uint32) 1 << i))
		{
			int			w = snprintf(buf + used, len - used, "%s%s",
									 used ? "," : "", mc_lib_name(i));

			if (w < 0)
				break;
			used += w;
		}
}

static void
mc_record_resource_leak(ErrorData *edata, const McLeakMessage *m)
{
	McViolation *v;
	char		resource[MC_NAME_LEN];
	char		libs[MC_LIB_LEN];

	if (m->resource != NULL)
		mc_strlcpy(resource, m->resource, sizeof(resource));
	else
		mc_resource_from_message(edata->message ? edata->message : "",
								 resource, sizeof(resource));
	mc_ran_libraries(libs, sizeof(libs));
	v = mc_finding_for(MC_CHECK_RESOURCE_LEAK, MC_LIFE_TRANSACTION, MC_NO_LIB,
					   resource, NULL);
	if (v == NULL)
		return;
	v->severity = MC_SEV_WARNING;
	v->phase = MC_PHASE_COMMIT;
	v->occurrences++;
	v->calls = v->occurrences;
	v->iterations = v->occurrences;
	mc_strlcpy(v->context_name, resource, MC_NAME_LEN);
	mc_strlcpy(v->context_path, resource, MC_PATH_LEN);
	if (libs[0] != '\0')
		mc_strlcpy(v->source_lib, libs, MC_LIB_LEN);
	snprintf(v->detail, MC_DETAIL_LEN,
			 "PostgreSQL reported at end of transaction (%lld time%s): %s",
			 (long long) v->occurrences, v->occurrences == 1 ? "" : "s",
			 edata->message ? edata->message : edata->message_id);
	mc_finding_changed(v);
}

/*
 * A build with memory-context checking (--enable-cassert) warns when a chunk
 * was written past its end, or an allocator's structures are corrupt.
 */
static const char *const corruption_messages[] = {
	"detected write past chunk end in ",
	"problem in alloc set ",
	"problem in Generation ",
	"problem in slab ",
	"problem in Bump ",
};

/* "detected write past chunk end in NAME 0x55.." / "problem in alloc set NAME: ..." */
static void
mc_corrupted_context(const char *msg, const char *prefix, char *name, size_t len,
					 const void **chunk)
{
	const char *p = msg + strlen(prefix);
	const char *end = strstr(p, ": ");
	const char *hex = strstr(p, " 0x");

	*chunk = NULL;
	if (end == NULL || (hex != NULL && hex < end))
		end = hex;
	if (end == NULL)
		end = p + strlen(p);
	if (hex != NULL)
		*chunk = (const void *) (uintptr_t) strtoull(hex + 1, NULL, 16);
	snprintf(name, len, "%.*s", (int) Min((size_t) (end - p), len - 1), p);
}

static void
mc_record_corruption(ErrorData *edata, const char *prefix)
{
	McViolation *v;
	char		name[MC_NAME_LEN];
	char		libs[MC_LIB_LEN];
	const void *chunk;
	int			lib = MC_NO_LIB;
	uintptr_t	site = 0;
	const char *msg = edata->message ? edata->message : "";

	mc_corrupted_context(msg, prefix, name, sizeof(name), &chunk);
	mc_ran_libraries(libs, sizeof(libs));
	if (chunk != NULL && mc_track_last_freed(chunk, &lib, &site) && lib != MC_NO_LIB)
		mc_strlcpy(libs, mc_lib_name(lib), sizeof(libs));
	v = mc_finding_for(MC_CHECK_MEMORY_CORRUPTION, MC_LIFE_UNKNOWN, lib, name,
					   NULL);
	if (v == NULL)
		return;
	v->severity = MC_SEV_ERROR;
	v->phase = MC_PHASE_OTHER;
	v->occurrences++;
	mc_strlcpy(v->context_name, name, MC_NAME_LEN);
	mc_strlcpy(v->context_path, name, MC_PATH_LEN);
	if (libs[0] != '\0')
		mc_strlcpy(v->source_lib, libs, MC_LIB_LEN);
	if (site != 0 && lib != MC_NO_LIB)
	{
		v->nsites = 1;
		mc_strlcpy(v->sites[0].lib, mc_lib_name(lib), MC_LIB_LEN);
		v->sites[0].offset = (uint64) (site - mc_lib_base(lib));
		v->sites[0].count = v->occurrences;
	}
	snprintf(v->detail, MC_DETAIL_LEN,
			 "PostgreSQL's memory-context checks (assertion-enabled build) reported %lld time%s: %s",
			 (long long) v->occurrences, v->occurrences == 1 ? "" : "s", msg);
	mc_finding_changed(v);
}

static void
mc_emit_log_hook(ErrorData *edata)
{
	if (!in_emit_log_hook && mc_active && MyProc != NULL &&
		edata->elevel == WARNING && edata->message_id != NULL)
	{
		int			i;

		in_emit_log_hook = true;
		for (i = 0; i < (int) lengthof(leak_messages); i++)
			if (strncmp(edata->message_id, leak_messages[i].prefix,
						strlen(leak_messages[i].prefix)) == 0)
			{
				mc_record_resource_leak(edata, &leak_messages[i]);
				break;
			}
		for (i = 0; i < (int) lengthof(corruption_messages); i++)
			if (strncmp(edata->message_id, corruption_messages[i],
						strlen(corruption_messages[i])) == 0)
			{
				mc_record_corruption(edata, corruption_messages[i]);
				break;
			}
		in_emit_log_hook = false;
	}

	if (prev_emit_log_hook)
		prev_emit_log_hook(edata);
}

void
mc_reslog_init(void)
{
	prev_emit_log_hook = emit_log_hook;
	emit_log_hook = mc_emit_log_hook;
}
