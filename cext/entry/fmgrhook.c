/*-------------------------------------------------------------------------
 *
 * fmgrhook.c
 *		Every call of a foreign library's C function is a foreign segment:
 *		its SQL functions, operator-class support functions, type I/O,
 *		triggers and aggregate functions.
 *
 * needs_fmgr_hook answers true only for C-language functions whose library
 * is foreign, so SQL functions keep being inlined and PostgreSQL's own
 * functions keep their fast path; the answer is cached per function OID
 * and forgotten when pg_proc changes.  PostgreSQL then calls such
 * functions through fmgr_security_definer, which calls fmgr_hook at the
 * start and end of every call and when an error leaves it.  A function's
 * library is loaded at its first call, just before FHET_START, which is
 * where a library loaded that way is registered and its GOT patched.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/transam.h"
#include "catalog/pg_language.h"
#include "catalog/pg_proc.h"
#include "fmgr.h"
#include "utils/inval.h"
#include "utils/syscache.h"

#include "entry/hooks.h"

#define MC_FN_CACHE 256			/* open addressing; power of two */
#define MC_PROBIN_LEN 128

typedef struct McFnEntry
{
	Oid			oid;			/* InvalidOid: empty slot */
	bool		foreign;
	int16		lib;			/* registry index once loaded */
	char		probin[MC_PROBIN_LEN];
	char		name[NAMEDATALEN];
	int16		nargs;
} McFnEntry;

static McFnEntry cache[MC_FN_CACHE];
static int	ncached = 0;
static bool callback_registered = false;
static needs_fmgr_hook_type prev_needs_fmgr_hook = NULL;
static fmgr_hook_type prev_fmgr_hook = NULL;

static void
mc_fn_invalidate(Datum arg, int cacheid, uint32 hashvalue)
{
	(void) arg;
	(void) cacheid;
	(void) hashvalue;
	memset(cache, 0, sizeof(cache));
	ncached = 0;
}

static McFnEntry *
mc_fn_lookup(Oid oid, bool fill)
{
	uint32		i = (oid * 2654435761u) & (MC_FN_CACHE - 1);
	HeapTuple	tup;
	Form_pg_proc proc;
	McFnEntry  *e;
	int			probe;

	for (probe = 0; probe < MC_FN_CACHE; probe++, i = (i + 1) & (MC_FN_CACHE - 1))
	{
		if (cache[i].oid == oid)
			return &cache[i];
		if (cache[i].oid == InvalidOid)
			break;
	}
	if (!fill)
		return NULL;
	if (ncached >= MC_FN_CACHE / 2)
		mc_fn_invalidate((Datum) 0, 0, 0);
	if (!callback_registered)
	{
		CacheRegisterSyscacheCallback(PROCOID, mc_fn_invalidate, (Datum) 0);
		callback_registered = true;
	}
	i = (oid * 2654435761u) & (MC_FN_CACHE - 1);
	while (cache[i].oid != InvalidOid)
		i = (i + 1) & (MC_FN_CACHE - 1);
	e = &cache[i];
	memset(e, 0, sizeof(*e));
	e->oid = oid;
	e->lib = MC_NO_LIB;
	ncached++;

	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(oid));
	if (!HeapTupleIsValid(tup))
		return e;
	proc = (Form_pg_proc) GETSTRUCT(tup);
	mc_strlcpy(e->name, NameStr(proc->proname), sizeof(e->name));
	e->nargs = proc->pronargs;
	if (proc->prolang == ClanguageId)
	{
		bool		isnull;
		Datum		d = SysCacheGetAttr(PROCOID, tup, Anum_pg_proc_probin, &isnull);

		if (!isnull)
		{
			text	   *t = DatumGetTextPP(d);
			int			len = Min(VARSIZE_ANY_EXHDR(t), MC_PROBIN_LEN - 1);

			memcpy(e->probin, VARDATA_ANY(t), len);
			e->probin[len] = '\0';
			e->foreign = mc_module_is_foreign(e->probin);
		}
	}
	ReleaseSysCache(tup);
	return e;
}

static bool
mc_needs_fmgr_hook(Oid fn_oid)
{
	if (prev_needs_fmgr_hook && prev_needs_fmgr_hook(fn_oid))
		return true;
	/* PostgreSQL's own functions are never foreign */
	if (!mc_active || fn_oid < FirstNormalObjectId)
		return false;
	return mc_fn_lookup(fn_oid, true)->foreign;
}

static void
mc_fmgr_hook(FmgrHookEventType event, FmgrInfo *flinfo, Datum *private)
{
	McFnEntry  *e;

	if (prev_fmgr_hook)
		prev_fmgr_hook(event, flinfo, private);
	switch (event)
	{
		case FHET_START:
			*private = Int32GetDatum(mc_seg_depth());
			if (!mc_active)
				return;
			e = mc_fn_lookup(flinfo->fn_oid, false);
			if (e == NULL || !e->foreign)
				return;
			if (e->lib == MC_NO_LIB)
			{
				/* its library was just loaded by this call */
				e->lib = (int16) mc_lib_by_name(e->probin);
				if (e->lib == MC_NO_LIB && mc_foreign_scan() > 0)
				{
					mc_gotwrap_patch_all();
					mc_libs_dirty = true;
					e->lib = (int16) mc_lib_by_name(e->probin);
				}
			}
			if (e->lib != MC_NO_LIB)
				mc_seg_open(e->lib, MC_ENTRY_FUNCTION, flinfo->fn_oid, MC_PHASE_FUNCTION);
			break;
		case FHET_END:
			/* *private was overwritten if the function recursed: pop ours */
			if (mc_seg_top_is(MC_ENTRY_FUNCTION, flinfo->fn_oid))
				mc_seg_end();
			break;
		case FHET_ABORT:
			mc_seg_unwind(DatumGetInt32(*private));
			break;
	}
}

/* "function buggy_pg_ext_work()" for a cached function (a segment's entry) */
static bool
mc_function_describe(uint32 fn_oid, char *buf, size_t len)
{
	McFnEntry  *e = mc_fn_lookup((Oid) fn_oid, false);

	if (e == NULL || e->name[0] == '\0')
		return false;
	snprintf(buf, len, "function %s()", e->name);
	return true;
}

void
mc_fmgr_install(void)
{
	prev_needs_fmgr_hook = needs_fmgr_hook;
	needs_fmgr_hook = mc_needs_fmgr_hook;
	prev_fmgr_hook = fmgr_hook;
	fmgr_hook = mc_fmgr_hook;
	mc_seg_register_describer(MC_ENTRY_FUNCTION, mc_function_describe);
}
