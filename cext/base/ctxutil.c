/*-------------------------------------------------------------------------
 *
 * ctxutil.c
 *		Reading memory contexts: display names, paths, depth, and which
 *		lifetime a context's memory has.
 *
 * Everything here follows parent pointers only: O(depth), no allocation,
 * safe inside the memory-context method wrappers and during error recovery.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/memutils.h"

#include "base/base.h"

/* deepest path we print; deeper contexts are shown from the top */
#define MC_MAX_PATH_DEPTH 64

void
mc_strlcpy(char *dst, const char *src, size_t len)
{
	if (len == 0)
		return;
	if (src == NULL)
		src = "";
	strlcpy(dst, src, len);
}

/* dynahash contexts are all called "dynahash"; their ident says which */
const char *
mc_context_display_name(MemoryContext ctx)
{
	if (ctx == MC_MALLOC_HEAP)
		return "malloc heap";
	if (ctx->ident != NULL && strcmp(ctx->name, "dynahash") == 0)
		return ctx->ident;
	return ctx->name;
}

int
mc_context_depth(MemoryContext ctx)
{
	int			depth = 0;

	if (ctx == MC_MALLOC_HEAP)
		return 0;
	while (ctx != NULL && ctx->parent != NULL)
	{
		depth++;
		ctx = ctx->parent;
	}
	return depth;
}

void
mc_context_path(MemoryContext ctx, char *buf, size_t len)
{
	MemoryContext chain[MC_MAX_PATH_DEPTH];
	int			n = 0;
	size_t		used = 0;

	buf[0] = '\0';
	if (ctx == MC_MALLOC_HEAP)
	{
		mc_strlcpy(buf, "malloc heap", len);
		return;
	}
	while (ctx != NULL && n < (int) lengthof(chain))
	{
		chain[n++] = ctx;
		ctx = ctx->parent;
	}
	while (n-- > 0 && used + 1 < len)
	{
		int			w = snprintf(buf + used, len - used, "%s%s",
								 used > 0 ? "/" : "",
								 mc_context_display_name(chain[n]));

		if (w < 0)
			break;
		used += w;
	}
}

bool
mc_is_global_context(MemoryContext ctx)
{
	return ctx != NULL &&
		(ctx == TopMemoryContext || ctx == CacheMemoryContext ||
		 ctx == ErrorContext);
}

bool
mc_is_under(MemoryContext ctx, MemoryContext root)
{
	if (root == NULL || ctx == MC_MALLOC_HEAP)
		return false;
	for (; ctx != NULL; ctx = ctx->parent)
		if (ctx == root)
			return true;
	return false;
}

/*
 * The lifetime the memory of ctx has by where ctx sits: freed at the end of
 * the transaction (TopTransactionContext and below), of the statement
 * (portals, MessageContext, and anything not under TopMemoryContext's
 * long-lived children), or never.  Used where a death was not observed.
 */
McLifetime
mc_context_lifetime(MemoryContext ctx)
{
	MemoryContext c;

	if (ctx == MC_MALLOC_HEAP)
		return MC_LIFE_BACKEND;
	for (c = ctx; c != NULL; c = c->parent)
	{
		if (c == TopTransactionContext || c == CurTransactionContext)
			return MC_LIFE_TRANSACTION;
		if (c == MessageContext || c == PortalContext ||
			(c->parent == TopMemoryContext &&
			 strcmp(c->name, "TopPortalContext") == 0))
			return MC_LIFE_STATEMENT;
	}
	return MC_LIFE_BACKEND;
}
