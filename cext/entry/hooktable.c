/*-------------------------------------------------------------------------
 *
 * hooktable.c
 *		Putting our layers into the hook chains (hooks.h), finding the
 *		libraries in them, and the safe-point work done at statement
 *		boundaries.
 *
 * The postmaster's shmem startup, after every preloaded library's _PG_init,
 * registers the foreign libraries, patches their GOTs (so the innermost
 * library's call of the standard function is bracketed) and installs the
 * OUTER layer wherever a foreign function sits at the top of a chain, and
 * on the hooks that mark statement boundaries.  In a backend, a library
 * loaded later (LOAD, CREATE EXTENSION, the first call of one of its
 * functions) is noticed at the next safe point: it is registered and
 * patched, and where it wrapped a chain outside our outermost layer, a LATE
 * layer goes on top.  Only when a chain has no room left does a library's
 * hook go unmeasured, and then a coverage_gap finding says so.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"

#include "entry/hooks.h"

#define MC_MAX_STD_TARGETS 16	/* hooks with a standard function */

bool		mc_libs_dirty = true;

const char *
mc_hook_name(int hook)
{
	if (hook == MC_HOOK_FMGR)
		return "fmgr_hook";
	if (hook == MC_HOOK_NEEDS_FMGR)
		return "needs_fmgr_hook";
	return (hook >= 0 && hook < mc_nhooks) ? mc_hooks[hook].name : "hook";
}

int
mc_hook_count(void)
{
	return mc_nhooks;
}

static bool
mc_describe_hook(uint32 id, char *buf, size_t len)
{
	snprintf(buf, len, "%s", mc_hook_name((int) id));
	return true;
}

/* measuring on or off (settings.c calls it, in any process) */
static void
mc_entry_mode_changed(bool on)
{
	mc_gotwrap_set_hot(on);
	mc_hooks_attach(on);
	if (!on)
		mc_deactivate();
}

/*
 * At start-up (_PG_init): the GOT targets of this layer (the brackets
 * around the standard functions, callback registration), the names of its
 * entry points, and what switching measuring on or off does here.
 */
void
mc_entry_init(void)
{
	McGotTarget std[MC_MAX_STD_TARGETS];
	int			n = 0;
	int			i;

	for (i = 0; i < mc_nhooks && n < MC_MAX_STD_TARGETS; i++)
		if (mc_hooks[i].std_symbol != NULL)
		{
			std[n].symbol = mc_hooks[i].std_symbol;
			std[n].wrapper = mc_hooks[i].std_wrapper;
			std[n].real = mc_hooks[i].std_real;
			n++;
		}
	mc_gotwrap_add_targets(std, n);
	mc_xact_init();
	mc_entry_thunks_init();
	mc_functions_init();
	mc_routines_init();
	mc_bgworker_init();
	mc_seg_register_describer(MC_ENTRY_HOOK, mc_describe_hook);
	mc_settings_on_mode_change(mc_entry_mode_changed);
	/* the mode the configuration set before the listener was there */
	mc_gotwrap_set_hot(mc_mode != MC_MODE_OFF);
}

static bool
mc_is_our_layer(McHookDesc *h, void *fn)
{
	int			l;

	for (l = 0; l < MC_NUM_LAYERS; l++)
		if (fn == h->layer_fn[l])
			return true;
	return false;
}

static void
mc_install_layer(McHookDesc *h, int layer)
{
	void	   *prev = *h->var;

	h->prev[layer] = prev;
	h->prev_lib[layer] = (prev != NULL && !mc_is_our_layer(h, prev)) ?
		(int16) mc_lib_of_address(prev) : MC_NO_LIB;
	h->installed[layer] = true;
	*h->var = h->layer_fn[layer];
}

/*
 * After every preloaded library's _PG_init: the outer layer wherever
 * another library now sits at the top of a chain, and on the hooks that
 * mark statement boundaries even when none does.
 */
void
mc_hooks_install_outer(void)
{
	int			i;

	for (i = 0; i < mc_nhooks; i++)
	{
		McHookDesc *h = &mc_hooks[i];

		if (h->installed[MC_LAYER_OUTER] || mc_is_our_layer(h, *h->var))
			continue;
		if (*h->var == NULL && (!h->always || h->needs_prev))
			continue;
		mc_install_layer(h, MC_LAYER_OUTER);
	}
	mc_hooks_attach(mc_mode != MC_MODE_OFF);
}

/*
 * Measuring on or off (the mode's assign hook, so also in the postmaster,
 * where backends inherit it): with it off, OUTER steps out of each chain it
 * tops, so the chain is what it would be without pg_ext_memcheck; back on,
 * it steps in again.  If a library wrapped the chain meanwhile, a late layer
 * goes over it at the next safe point instead.  Only pointer stores.
 */
void
mc_hooks_attach(bool on)
{
	int			i;

	for (i = 0; i < mc_nhooks; i++)
	{
		McHookDesc *h = &mc_hooks[i];
		void	   *outer = h->layer_fn[MC_LAYER_OUTER];

		if (!h->installed[MC_LAYER_OUTER])
			continue;
		if (!on && !h->detached && *h->var == outer)
		{
			*h->var = h->prev[MC_LAYER_OUTER];
			h->detached = true;
		}
		else if (on && h->detached)
		{
			if (*h->var == h->prev[MC_LAYER_OUTER])
				*h->var = outer;
			h->detached = false;
			mc_libs_dirty = true;
		}
	}

	/*
	 * A library loaded while measuring was off wrapped a chain OUTER had
	 * stepped out of: nothing of ours is left on top of it to reach a safe
	 * point, so its late layer goes in now.
	 */
	if (on)
		mc_hooks_layer_late(false);
}

/* a library loaded in this backend wrapped a chain outside our layers */
void
mc_hooks_check_late(void)
{
	mc_hooks_layer_late(true);
}

/* the same; a chain with no layer left is a coverage gap when record_gaps (not in an assign hook) */
void
mc_hooks_layer_late(bool record_gaps)
{
	int			i;

	for (i = 0; i < mc_nhooks; i++)
	{
		McHookDesc *h = &mc_hooks[i];
		int			layer;

		if (*h->var == NULL || mc_is_our_layer(h, *h->var) || h->detached)
			continue;
		for (layer = MC_LAYER_OUTER; layer < MC_NUM_LAYERS; layer++)
			if (!h->installed[layer])
				break;
		if (layer == MC_NUM_LAYERS && !record_gaps)
			continue;
		if (layer == MC_NUM_LAYERS)
		{
			char		lib[MC_LIB_LEN];
			char		detail[256];

			mc_strlcpy(lib, mc_lib_name(mc_lib_of_address(*h->var)), sizeof(lib));
			snprintf(detail, sizeof(detail),
					 "the %s hook of %s was installed after all of pg_ext_memcheck's layers; add the library to shared_preload_libraries",
					 h->name, lib[0] ? lib : "a library");
			mc_record_gap(lib[0] ? lib : NULL, h->name, detail);
			continue;
		}
		mc_install_layer(h, layer);
	}
}

/* "ExecutorEnd: buggy_pg_ext.so" - which libraries sit in a chain */
void
mc_hook_describe(int hook, char *buf, size_t len)
{
	McHookDesc *h = &mc_hooks[hook];
	int			l;
	size_t		used = 0;

	buf[0] = '\0';
	for (l = 0; l < MC_NUM_LAYERS && used + 1 < len; l++)
		if (h->installed[l] && h->prev_lib[l] != MC_NO_LIB)
		{
			int			w = snprintf(buf + used, len - used, "%s%s",
									 used ? "," : "", mc_lib_name(h->prev_lib[l]));

			if (w < 0)
				break;
			used += w;
		}
}

/*
 * At the start of a top-level statement and after a utility statement:
 * apply setting changes, follow newly loaded libraries, judge what the
 * last transaction left behind, publish new or worse findings.
 */
void
mc_hooks_safe_point(void)
{
	/* first: our callbacks reset the state errors leave behind */
	mc_xact_callbacks_register();
	mc_track_abort_over();
	if (mc_settings_dirty)
	{
		mc_settings_dirty = false;
		mc_refresh_active();
		mc_check_privileged();
	}
	if (!mc_active)
		return;
	if (mc_libs_dirty || mc_foreign_new)
	{
		mc_libs_dirty = false;
		mc_foreign_new = false;
		if (mc_foreign_changed() && mc_foreign_scan() > 0)
			mc_gotwrap_patch_all();
		mc_note_foreign_overflow();
		mc_hooks_check_late();
	}
	mc_track_judge_if_pending();
	mc_findings_publish(false);
}
