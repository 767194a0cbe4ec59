/*-------------------------------------------------------------------------
 *
 * foreign.c
 *		The registry of foreign libraries: PostgreSQL modules loaded into
 *		this process other than pg_ext_memcheck and PostgreSQL's own.
 *
 * A library is foreign when it exports Pg_magic_func (it is a PostgreSQL
 * module), it is not this library, and it is not one of the modules built
 * from PostgreSQL's own source tree (PL/pgSQL, encoding conversions, ...).
 * contrib modules count as foreign: they are extensions like any other.
 *
 * Each entry keeps the library's load base and the range of its code, so
 * that a return address can be turned into (library, offset) in O(libs)
 * without dladdr, and the PostgreSQL executable's code range, so that
 * "called from the core" is a range check.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <dlfcn.h>
#include <execinfo.h>
#include <link.h>

#include "base/base.h"

typedef struct McLib
{
	char		name[MC_LIB_LEN];	/* file name, e.g. "buggy_pg_ext.so" */
	uintptr_t	base;
	uintptr_t	text_lo;
	uintptr_t	text_hi;
} McLib;

static McLib libs[MC_MAX_LIBS];
static int	nlibs = 0;
static uintptr_t core_text_lo = 0;
static uintptr_t core_text_hi = 0;
static uintptr_t core_base = 0;
static uintptr_t self_base = 0;
static unsigned long long seen_adds = 0;
bool		mc_foreign_new = false;	/* libraries were added since a layer last looked */
static char lib_overflow[MAXPGPATH];	/* the first library not followed */

/* Modules built from PostgreSQL's own tree: never the code under test. */
static const char *const core_modules[] = {
	"plpgsql", "plperl", "plpython3", "plpython2", "pltcl", "dict_snowball",
	"libpqwalreceiver", "pgoutput", "llvmjit", "pg_ext_memcheck",
};

/* "buggy_pg_ext.so" or "/x/y/buggy_pg_ext.so" -> is it code under test? */
bool
mc_module_is_foreign(const char *file_name)
{
	const char *base = strrchr(file_name, '/');
	size_t		len;
	int			i;

	base = base ? base + 1 : file_name;
	len = strcspn(base, ".");
	for (i = 0; i < (int) lengthof(core_modules); i++)
		if (strlen(core_modules[i]) == len && strncmp(base, core_modules[i], len) == 0)
			return false;
	/* encoding conversion modules: utf8_and_iso8859, euc_jp_and_sjis, ... */
	if (strstr(base, "_and_") != NULL && len < 40)
		return false;
	return true;
}

static void
mc_text_range(struct dl_phdr_info *info, uintptr_t *lo, uintptr_t *hi)
{
	int			i;

	*lo = *hi = 0;
	for (i = 0; i < info->dlpi_phnum; i++)
	{
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];

		if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X))
		{
			uintptr_t	start = info->dlpi_addr + ph->p_vaddr;
			uintptr_t	end = start + ph->p_memsz;

			if (*lo == 0 || start < *lo)
				*lo = start;
			if (end > *hi)
				*hi = end;
		}
	}
}

static bool
mc_is_pg_module(const char *path)
{
	void	   *handle = dlopen(path, RTLD_LAZY | RTLD_NOLOAD);
	bool		found;

	if (handle == NULL)
		return false;
	found = dlsym(handle, "Pg_magic_func") != NULL;
	dlclose(handle);
	return found;
}

/* objects seen by one dl_iterate_phdr pass, checked after it returns */
typedef struct McCandidate
{
	char		path[MAXPGPATH];
	uintptr_t	base;
	uintptr_t	text_lo;
	uintptr_t	text_hi;
} McCandidate;

typedef struct McScan
{
	int			n;
	McCandidate cand[MC_MAX_LIBS * 2];
} McScan;

static int
mc_scan_one(struct dl_phdr_info *info, size_t size, void *data)
{
	McScan	   *scan = (McScan *) data;
	McCandidate *c;
	int			i;

	(void) size;
	if (info->dlpi_name == NULL || info->dlpi_name[0] == '\0')
	{
		/* the main program: PostgreSQL itself */
		if (core_text_lo == 0)
		{
			mc_text_range(info, &core_text_lo, &core_text_hi);
			core_base = info->dlpi_addr;
		}
		return 0;
	}
	if (info->dlpi_addr == self_base || !mc_module_is_foreign(info->dlpi_name))
		return 0;
	for (i = 0; i < nlibs; i++)
		if (libs[i].base == info->dlpi_addr)
			return 0;
	if (scan->n >= (int) lengthof(scan->cand))
		return 0;
	c = &scan->cand[scan->n++];
	mc_strlcpy(c->path, info->dlpi_name, sizeof(c->path));
	c->base = info->dlpi_addr;
	mc_text_range(info, &c->text_lo, &c->text_hi);
	return 0;
}

static int
mc_read_adds(struct dl_phdr_info *info, size_t size, void *data)
{
	if (size >= offsetof(struct dl_phdr_info, dlpi_subs))
		*(unsigned long long *) data = info->dlpi_adds;
	return 1;					/* the first object is enough */
}

void
mc_foreign_init(void)
{
	Dl_info		self;

	if (dladdr((void *) mc_foreign_init, &self) != 0)
		self_base = (uintptr_t) self.dli_fbase;
}

/*
 * Register libraries loaded since the last scan; returns how many are new.
 * dlopen(RTLD_NOLOAD) is called outside dl_iterate_phdr, which holds the
 * loader's lock.
 */
/* the first library that did not fit into the table, or NULL */
const char *
mc_foreign_overflow(void)
{
	return lib_overflow[0] ? lib_overflow : NULL;
}

int
mc_foreign_scan(void)
{
	static McScan scan;
	int			added = 0;
	int			i;

	dl_iterate_phdr(mc_read_adds, &seen_adds);
	scan.n = 0;
	dl_iterate_phdr(mc_scan_one, &scan);
	for (i = 0; i < scan.n; i++)
	{
		McCandidate *c = &scan.cand[i];
		const char *slash;

		if (!mc_is_pg_module(c->path))
			continue;
		if (nlibs >= MC_MAX_LIBS)
		{
			/* said as a coverage gap by mc_note_foreign_overflow() */
			if (lib_overflow[0] == '\0')
				mc_strlcpy(lib_overflow, c->path, sizeof(lib_overflow));
			break;
		}
		slash = strrchr(c->path, '/');
		mc_strlcpy(libs[nlibs].name, slash ? slash + 1 : c->path, MC_LIB_LEN);
		libs[nlibs].base = c->base;
		libs[nlibs].text_lo = c->text_lo;
		libs[nlibs].text_hi = c->text_hi;
		nlibs++;
		added++;
	}
	if (added > 0)
		mc_foreign_new = true;
	return added;
}

/* Was any shared object loaded since the last scan?  A few dozen instructions. */
bool
mc_foreign_changed(void)
{
	unsigned long long adds = seen_adds;

	dl_iterate_phdr(mc_read_adds, &adds);
	return adds != seen_adds;
}

int
mc_lib_of_address(const void *addr)
{
	static int	last = 0;		/* calls come from one library in a row */
	uintptr_t	a = (uintptr_t) addr;
	int			i;

	if (last < nlibs && a >= libs[last].text_lo && a < libs[last].text_hi)
		return last;
	for (i = 0; i < nlibs; i++)
		if (a >= libs[i].text_lo && a < libs[i].text_hi)
		{
			last = i;
			return i;
		}
	return MC_NO_LIB;
}

/*
 * The first frame of this stack (above our caller) that lies in a foreign
 * library: its address, and the library in *lib; 0 when there is none.
 * No palloc and no error: callable from inside the allocator.  Callers
 * budget it (a stack walk is the expensive part of finding a site).
 */
uintptr_t
mc_foreign_frame(int *lib)
{
	void	   *frames[24];
	int			n = backtrace(frames, lengthof(frames));
	int			i;

	for (i = 1; i < n; i++)
	{
		int			l = mc_lib_of_address(frames[i]);

		if (l != MC_NO_LIB)
		{
			*lib = l;
			return (uintptr_t) frames[i];
		}
	}
	return 0;
}

/* by module name with or without directory and suffix: "$libdir/buggy_pg_ext" */
int
mc_lib_by_name(const char *name)
{
	const char *base = strrchr(name, '/');
	size_t		len;
	int			i;

	base = base ? base + 1 : name;
	len = strcspn(base, ".");
	for (i = 0; i < nlibs; i++)
		if (strncmp(libs[i].name, base, len) == 0 &&
			(libs[i].name[len] == '.' || libs[i].name[len] == '\0'))
			return i;
	return MC_NO_LIB;
}

const char *
mc_lib_name(int lib)
{
	return (lib >= 0 && lib < nlibs) ? libs[lib].name : "";
}

uintptr_t
mc_lib_base(int lib)
{
	return (lib >= 0 && lib < nlibs) ? libs[lib].base : 0;
}

int
mc_lib_count(void)
{
	return nlibs;
}

bool
mc_is_core_address(const void *addr)
{
	return (uintptr_t) addr >= core_text_lo && (uintptr_t) addr < core_text_hi;
}

uintptr_t
mc_core_base(void)
{
	return core_base;
}

/* was PostgreSQL's executable found (its base is 0 when it is not position-independent) */
bool
mc_core_known(void)
{
	return core_text_hi != 0;
}
