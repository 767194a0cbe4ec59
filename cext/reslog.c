/*-------------------------------------------------------------------------
 *
 * reslog.c
 *		Turn PostgreSQL's own end-of-transaction resource-leak warnings into
 *		resource_leak violations.
 *
 * When a resource owner is released at commit with resources still held,
 * PostgreSQL warns (DSM segments, relcache, plancache, tuple descriptors,
 * snapshots, files, buffer pins, ...).  Up to 16 each kind had its own
 * message; from 17 there is one, "resource was not closed: %s".  We match
 * the untranslated message id, so the server's language does not matter.
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

#include "pg_ext_memcheck.h"

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
		   !(p[n] == ' ' && (p[n + 1] == '0' || p[n + 1] == '(' ||
							 (p[n + 1] >= '0' && p[n + 1] <= '9') || p[n + 1] == '"')))
		n++;
	memcpy(buf, p, n);
	buf[n] = '\0';
}

static void
mc_emit_log_hook(ErrorData *edata)
{
	if (!in_emit_log_hook && IsUnderPostmaster && MyProc != NULL &&
		edata->elevel == WARNING && edata->message_id != NULL &&
		mc_ring_attached())
	{
		int			i;

		in_emit_log_hook = true;
		for (i = 0; i < (int) lengthof(leak_messages); i++)
		{
			const McLeakMessage *m = &leak_messages[i];

			if (strncmp(edata->message_id, m->prefix, strlen(m->prefix)) == 0)
			{
				McViolation v;

				memset(&v, 0, sizeof(v));
				v.check = MC_CHECK_RESOURCE_LEAK;
				v.severity = MC_SEV_WARNING;
				v.phase = MC_PHASE_COMMIT;
				v.nest_level = -1;
				v.bytes_per_iter = -1;
				v.iterations = 1;
				if (m->resource != NULL)
					mc_strlcpy(v.context_name, m->resource, MC_NAME_LEN);
				else
					mc_resource_from_message(edata->message ? edata->message : "",
											 v.context_name, MC_NAME_LEN);
				mc_strlcpy(v.context_path, v.context_name, MC_PATH_LEN);
				mc_strlcpy(v.source_lib, mc_last_statement_libs(), MC_LIB_LEN);
				snprintf(v.detail, MC_DETAIL_LEN,
						 "PostgreSQL reported at end of transaction: %s",
						 edata->message ? edata->message : edata->message_id);
				mc_emit(&v);
				break;
			}
		}
		in_emit_log_hook = false;
	}

	if (prev_emit_log_hook)
		prev_emit_log_hook(edata);
}

void
mc_install_emit_log_hook(void)
{
	prev_emit_log_hook = emit_log_hook;
	emit_log_hook = mc_emit_log_hook;
}
