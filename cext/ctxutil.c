/*-------------------------------------------------------------------------
 *
 * ctxutil.c
 *		Reading the memory-context tree: used bytes, names, paths, and which
 *		shared library a code or data address belongs to.
 *
 * "Used" is totalspace - freespace from the context's own stats method,
 * called for one context only (never the whole tree on a hook call).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <dlfcn.h>

#include "utils/memutils.h"

#include "compat.h"
#include "pg_ext_memcheck.h"

/* load bases of the postgres executable and of this library */
static void *core_base = NULL;
static void *self_base = NULL;

void
mc_ctxutil_init(void)
{
	Dl_info		info;

	if (dladdr((void *) palloc, &info) != 0)
		core_base = info.dli_fbase;
	if (dladdr((void *) mc_ctxutil_init, &info) != 0)
		self_base = info.dli_fbase;
}

void
mc_strlcpy(char *dst, const char *src, size_t len)
{
	if (len == 0)
		return;
	if (src == NULL)
		src = "";
	strlcpy(dst, src, len);
}

Size
mc_own_used(MemoryContext ctx)
{
	MemoryContextCounters c;

	if (ctx == NULL)
		return 0;
	memset(&c, 0, sizeof(c));
	MC_CONTEXT_STATS(ctx, &c);
	return c.totalspace - c.freespace;
}

/* pre-order walk of a subtree, summing used bytes */
Size
mc_subtree_used(MemoryContext ctx)
{
	MemoryContext cur = ctx;
	Size		total = 0;

	if (ctx == NULL)
		return 0;
	while (cur != NULL)
	{
		total += mc_own_used(cur);
		if (cur->firstchild != NULL)
			cur = cur->firstchild;
		else
		{
			while (cur != ctx && cur->nextchild == NULL)
				cur = cur->parent;
			if (cur == ctx)
				break;
			cur = cur->nextchild;
		}
	}
	return total;
}

/* dynahash contexts are all called "dynahash"; their ident says which */
const char *
mc_context_display_name(MemoryContext ctx)
{
	if (ctx->ident != NULL && strcmp(ctx->name, "dynahash") == 0)
		return ctx->ident;
	return ctx->name;
}

int
mc_context_depth(MemoryContext ctx)
{
	int			depth = 0;

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
	MemoryContext chain[64];
	int			n = 0;
	size_t		used = 0;

	buf[0] = '\0';
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

/*
 * Is addr inside a shared library other than PostgreSQL itself and this
 * library?  If so, copy its file name (without directories) into buf.
 * Compares load bases, not names: a backend's dli_fname for the executable
 * is its process title.
 */
bool
mc_foreign_lib_of(const void *addr, char *buf, size_t len)
{
	Dl_info		info;
	const char *slash;

	if (addr == NULL || dladdr(addr, &info) == 0 || info.dli_fname == NULL)
		return false;
	if (info.dli_fbase == core_base || info.dli_fbase == self_base)
		return false;
	slash = strrchr(info.dli_fname, '/');
	mc_strlcpy(buf, slash ? slash + 1 : info.dli_fname, len);
	return true;
}

bool
mc_is_global_context(MemoryContext ctx)
{
	return ctx != NULL &&
		(ctx == TopMemoryContext || ctx == CacheMemoryContext ||
		 ctx == ErrorContext);
}

/* is child (still) a direct child of parent? */
bool
mc_child_of(MemoryContext parent, MemoryContext child)
{
	MemoryContext c;

	for (c = parent->firstchild; c != NULL; c = c->nextchild)
		if (c == child)
			return true;
	return false;
}
