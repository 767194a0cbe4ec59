/*-------------------------------------------------------------------------
 *
 * fmgrhook.c
 *		The handler functions of a foreign library (returning
 *		index_am_handler, table_am_handler, fdw_handler or tsm_handler):
 *		their result, a struct of callbacks, gets bracketed (routines.c).
 *
 * Every call of a foreign C function is a segment already (functions.c
 * hands PostgreSQL a call thunk for it).  needs_fmgr_hook answers true
 * only for a foreign library's handler functions (the answer is cached
 * per function OID and forgotten when pg_proc changes); PostgreSQL then
 * calls them through fmgr_security_definer, which calls fmgr_hook around
 * the call, and for that one call we stand in for the handler to see the
 * struct it returns.  Another library's fmgr_hook shares the chain: its
 * private slot is never read or written, and it runs outside our work on
 * both sides.
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
	int8		routine;		/* a handler: which routine it returns, else -1 */
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
	e->routine = -1;
	ncached++;

	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(oid));
	if (!HeapTupleIsValid(tup))
		return e;
	proc = (Form_pg_proc) GETSTRUCT(tup);
	mc_strlcpy(e->name, NameStr(proc->proname), sizeof(e->name));
	e->nargs = proc->pronargs;
	e->routine = (int8) mc_routines_handler_kind(proc->prorettype);
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

/*
 * Another library's needs_fmgr_hook or fmgr_hook is a way into that library
 * too: its work there is a segment of its own, never the function's.
 */
static int16 prev_needs_lib = MC_NO_LIB - 1;	/* not looked up yet */
static int16 prev_hook_lib = MC_NO_LIB - 1;

static int
mc_prev_lib(void *fn, int16 *cached)
{
	if (*cached == MC_NO_LIB - 1 && fn != NULL)
	{
		int			lib = mc_lib_of_address(fn);

		/* a library not in the table yet is looked up again next time */
		if (lib != MC_NO_LIB || mc_is_core_address(fn))
			*cached = (int16) lib;
		return lib;
	}
	return *cached;
}

static bool
mc_needs_fmgr_hook(Oid fn_oid)
{
	McFnEntry  *e;

	if (prev_needs_fmgr_hook)
	{
		int			lib = mc_active ? mc_prev_lib((void *) prev_needs_fmgr_hook, &prev_needs_lib) : MC_NO_LIB;
		volatile bool needed = false;

		if (lib == MC_NO_LIB)
			needed = prev_needs_fmgr_hook(fn_oid);
		else
		{
			int			depth = mc_seg_depth();	/* its segment goes on top: no pause */

			mc_seg_open(lib, MC_ENTRY_HOOK, MC_HOOK_NEEDS_FMGR, MC_PHASE_PLANNER);
			PG_TRY();
			{
				needed = prev_needs_fmgr_hook(fn_oid);
			}
			PG_CATCH();
			{
				mc_seg_unwind(depth);
				PG_RE_THROW();
			}
			PG_END_TRY();
			mc_layer_leave(depth);
		}
		if (needed)
			return true;
	}
	/* PostgreSQL's own functions are never foreign; of a library's, only its handlers */
	if (!mc_active || fn_oid < FirstNormalObjectId)
		return false;
	e = mc_fn_lookup(fn_oid, true);
	return e->foreign && e->routine >= 0;
}

/*
 * Our state for one call in progress.  The chain of fmgr_hooks shares one
 * `private` slot per function cache, in which another library may keep a
 * pointer (sepgsql does): we never read or write it.  Calls nest, and an
 * error unwinds every fmgr_security_definer frame innermost first (each
 * gets FHET_ABORT), so a stack of our own follows them exactly.
 */
typedef struct McFnCall
{
	FmgrInfo   *flinfo;
	int			seg_depth;		/* the segment stack when it started */
	PGFunction	handler;		/* a handler's own address while we stand in for it */
	int8		routine;
	int16		lib;
} McFnCall;

#define MC_MAX_FN_CALLS 256

static Datum mc_handler_call(PG_FUNCTION_ARGS);

static McFnCall fn_calls[MC_MAX_FN_CALLS];
static int	nfn_calls = 0;
static int	fn_calls_overflow = 0;	/* calls nested deeper than the stack */

static void
mc_fn_call_push(FmgrInfo *flinfo, int seg_depth)
{
	if (nfn_calls >= MC_MAX_FN_CALLS)
	{
		fn_calls_overflow++;
		return;
	}
	fn_calls[nfn_calls].flinfo = flinfo;
	fn_calls[nfn_calls].seg_depth = seg_depth;
	fn_calls[nfn_calls].handler = NULL;
	nfn_calls++;
}

/* the call of flinfo ends (or is aborted): back to where it started */
static void
mc_fn_call_pop(FmgrInfo *flinfo)
{
	int			i;

	if (fn_calls_overflow > 0)
	{
		fn_calls_overflow--;
		return;
	}
	for (i = nfn_calls - 1; i >= 0; i--)
		if (fn_calls[i].flinfo == flinfo)
		{
			/* an error out of a handler: its own address goes back */
			if (fn_calls[i].handler != NULL && flinfo->fn_addr == mc_handler_call)
				flinfo->fn_addr = fn_calls[i].handler;
			mc_seg_unwind(fn_calls[i].seg_depth);
			nfn_calls = i;
			return;
		}
}

/*
 * A handler function (index_am_handler, fdw_handler ...) of a foreign
 * library is called through this for one call: fmgr_security_definer calls
 * flinfo->fn_addr right after FHET_START, so we put ourselves there at the
 * start, put the handler back, call it, and give PostgreSQL its routine
 * struct with the library's callbacks bracketed (routines.c).
 */
static Datum
mc_handler_call(PG_FUNCTION_ARGS)
{
	McFnCall   *c = NULL;
	Datum		result;
	int			i;

	for (i = nfn_calls - 1; i >= 0; i--)
		if (fn_calls[i].flinfo == fcinfo->flinfo && fn_calls[i].handler != NULL)
		{
			c = &fn_calls[i];
			break;
		}
	if (c == NULL)
		elog(ERROR, "pg_ext_memcheck: a handler call lost its function");
	fcinfo->flinfo->fn_addr = c->handler;
	c->handler = NULL;
	result = fcinfo->flinfo->fn_addr(fcinfo);
	if (c->routine >= 0)
	{
		int			depth = mc_layer_enter();

		result = PointerGetDatum(mc_routines_wrap((McRoutineKindId) c->routine,
												  DatumGetPointer(result), c->lib));
		mc_layer_leave(depth);
	}
	return result;
}

/* the next fmgr_hook in the chain, as a segment of its library when it is foreign */
static void
mc_call_prev_fmgr_hook(FmgrHookEventType event, FmgrInfo *flinfo, Datum *private)
{
	int			lib = mc_active ? mc_prev_lib((void *) prev_fmgr_hook, &prev_hook_lib) : MC_NO_LIB;
	int			depth;

	if (lib == MC_NO_LIB)
	{
		prev_fmgr_hook(event, flinfo, private);
		return;
	}
	depth = mc_seg_depth();		/* its segment goes on top: no pause */
	mc_seg_open(lib, MC_ENTRY_HOOK, MC_HOOK_FMGR, MC_PHASE_FUNCTION);
	PG_TRY();
	{
		prev_fmgr_hook(event, flinfo, private);
	}
	PG_CATCH();
	{
		mc_seg_unwind(depth);
		PG_RE_THROW();
	}
	PG_END_TRY();
	mc_layer_leave(depth);
}

/*
 * The previous hook runs outside the function's segment on both sides:
 * before we open it at the start, after we close it at the end.
 */
static void
mc_fmgr_hook(FmgrHookEventType event, FmgrInfo *flinfo, Datum *private)
{
	McFnEntry  *e;

	switch (event)
	{
		case FHET_START:
			if (prev_fmgr_hook)
				mc_call_prev_fmgr_hook(event, flinfo, private);
			mc_fn_call_push(flinfo, mc_seg_depth());
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
			if (e->lib == MC_NO_LIB)
				return;
			/* the call itself is a segment already (its address is a thunk, functions.c) */
			if (e->routine >= 0 && nfn_calls > 0 && fn_calls[nfn_calls - 1].flinfo == flinfo &&
				flinfo->fn_addr != mc_handler_call)
			{
				McFnCall   *c = &fn_calls[nfn_calls - 1];

				c->handler = flinfo->fn_addr;
				c->routine = e->routine;
				c->lib = e->lib;
				flinfo->fn_addr = mc_handler_call;
			}
			break;
		case FHET_END:
		case FHET_ABORT:
			mc_fn_call_pop(flinfo);
			if (prev_fmgr_hook)
				mc_call_prev_fmgr_hook(event, flinfo, private);
			break;
	}
}

void
mc_fmgr_install(void)
{
	prev_needs_fmgr_hook = needs_fmgr_hook;
	needs_fmgr_hook = mc_needs_fmgr_hook;
	prev_fmgr_hook = fmgr_hook;
	fmgr_hook = mc_fmgr_hook;
}
