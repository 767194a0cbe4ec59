/*-------------------------------------------------------------------------
 *
 * gotpatch.c
 *		Redirect a foreign library's calls into PostgreSQL and libc through
 *		our wrappers by rewriting its global offset table.
 *
 * A shared library calls functions of other objects (palloc, standard_
 * ExecutorRun, malloc, ...) through slots of its global offset table that
 * the dynamic linker fills in; the relocations that name those slots are in
 * its dynamic section (R_*_JUMP_SLOT for calls, R_*_GLOB_DAT for taken
 * addresses).  Writing our wrapper's address into a slot makes every call
 * the library makes through it reach the wrapper, however the library's
 * code was entered.  This is what lets pg_ext_memcheck measure a library
 * in any load order: a library loaded before us calls standard_ExecutorRun
 * itself instead of our hook, but it calls it through its GOT.
 *
 * With full RELRO the GOT is read-only after relocation; the page is made
 * writable for the write and read-only again after.  A library that copied
 * a standard function's address into a variable before we patched (prev =
 * hook ? hook : standard_ExecutorRun) is handled by retargeting exact copies
 * of that address in its writable data.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <dlfcn.h>
#include <elf.h>
#include <link.h>
#include <sys/mman.h>
#include <unistd.h>

#include "platform/platform.h"

#if defined(__x86_64__)
#define MC_R_JUMP_SLOT	R_X86_64_JUMP_SLOT
#define MC_R_GLOB_DAT	R_X86_64_GLOB_DAT
#elif defined(__aarch64__)
#define MC_R_JUMP_SLOT	R_AARCH64_JUMP_SLOT
#define MC_R_GLOB_DAT	R_AARCH64_GLOB_DAT
#else
#define MC_NO_GOT_SUPPORT 1
#define MC_R_JUMP_SLOT	(~0UL)
#define MC_R_GLOB_DAT	(~0UL)
#endif

#if __ELF_NATIVE_CLASS == 64
#define MC_R_SYM(i)		ELF64_R_SYM(i)
#define MC_R_TYPE(i)	ELF64_R_TYPE(i)
#else
#define MC_R_SYM(i)		ELF32_R_SYM(i)
#define MC_R_TYPE(i)	ELF32_R_TYPE(i)
#endif

typedef struct McObject
{
	uintptr_t	base;
	bool		main_program;
	const ElfW(Phdr) *phdr;
	int			phnum;
	bool		found;
} McObject;

typedef struct McDynamic
{
	const ElfW(Sym) *symtab;
	const char *strtab;
	const ElfW(Rela) *jmprel;
	size_t		pltrelsz;
	const ElfW(Rela) *rela;
	size_t		relasz;
	bool		rela_kind;		/* DT_PLTREL says RELA */
	uintptr_t	relro_lo;
	uintptr_t	relro_hi;
} McDynamic;

static int
mc_find_object(struct dl_phdr_info *info, size_t size, void *data)
{
	McObject   *o = (McObject *) data;

	bool		is_main = info->dlpi_name == NULL || info->dlpi_name[0] == '\0';

	(void) size;
	if (info->dlpi_addr != o->base || is_main != o->main_program)
		return 0;
	o->phdr = info->dlpi_phdr;
	o->phnum = info->dlpi_phnum;
	o->found = true;
	return 1;
}

/* glibc relocates most d_ptr values in place; others stay relative */
static uintptr_t
mc_dyn_ptr(uintptr_t base, ElfW(Addr) value)
{
	return value < base ? base + value : value;
}

static bool
mc_read_dynamic(const McObject *o, McDynamic *d, char *why, size_t whylen)
{
	const ElfW(Dyn) *dyn = NULL;
	int			i;

	memset(d, 0, sizeof(*d));
	d->rela_kind = true;
	for (i = 0; i < o->phnum; i++)
	{
		const ElfW(Phdr) *ph = &o->phdr[i];

		if (ph->p_type == PT_DYNAMIC)
			dyn = (const ElfW(Dyn) *) (o->base + ph->p_vaddr);
		else if (ph->p_type == PT_GNU_RELRO)
		{
			d->relro_lo = o->base + ph->p_vaddr;
			d->relro_hi = d->relro_lo + ph->p_memsz;
		}
	}
	if (dyn == NULL)
	{
		snprintf(why, whylen, "it has no dynamic section");
		return false;
	}
	for (; dyn->d_tag != DT_NULL; dyn++)
	{
		switch (dyn->d_tag)
		{
			case DT_SYMTAB:
				d->symtab = (const ElfW(Sym) *) mc_dyn_ptr(o->base, dyn->d_un.d_ptr);
				break;
			case DT_STRTAB:
				d->strtab = (const char *) mc_dyn_ptr(o->base, dyn->d_un.d_ptr);
				break;
			case DT_JMPREL:
				d->jmprel = (const ElfW(Rela) *) mc_dyn_ptr(o->base, dyn->d_un.d_ptr);
				break;
			case DT_PLTRELSZ:
				d->pltrelsz = dyn->d_un.d_val;
				break;
			case DT_PLTREL:
				d->rela_kind = (dyn->d_un.d_val == DT_RELA);
				break;
			case DT_RELA:
				d->rela = (const ElfW(Rela) *) mc_dyn_ptr(o->base, dyn->d_un.d_ptr);
				break;
			case DT_RELASZ:
				d->relasz = dyn->d_un.d_val;
				break;
			default:
				break;
		}
	}
	if (d->symtab == NULL || d->strtab == NULL)
	{
		snprintf(why, whylen, "its dynamic section has no symbol table");
		return false;
	}
	if (!d->rela_kind)
	{
		snprintf(why, whylen, "it uses REL relocations, which this platform build does not read");
		return false;
	}
	return true;
}

/* write one pointer-sized value, making a read-only page writable for it */
static bool
mc_write_word(uintptr_t addr, uintptr_t value, const McDynamic *d)
{
	long		pagesize = sysconf(_SC_PAGESIZE);
	uintptr_t	page = addr & ~((uintptr_t) pagesize - 1);
	bool		relro = addr >= d->relro_lo && addr < d->relro_hi;

	if (relro && mprotect((void *) page, pagesize, PROT_READ | PROT_WRITE) != 0)
		return false;
	*(volatile uintptr_t *) addr = value;
	if (relro)
		mprotect((void *) page, pagesize, PROT_READ);
	return true;
}

static int
mc_patch_relocs(const McObject *o, const McDynamic *d, const ElfW(Rela) *rel,
				size_t size, const McGotTarget *targets, int ntargets)
{
	size_t		n = size / sizeof(ElfW(Rela));
	size_t		i;
	int			patched = 0;

	for (i = 0; rel != NULL && i < n; i++)
	{
		unsigned long type = MC_R_TYPE(rel[i].r_info);
		unsigned long symidx = MC_R_SYM(rel[i].r_info);
		const char *name;
		int			t;

		if ((type != MC_R_JUMP_SLOT && type != MC_R_GLOB_DAT) || symidx == 0)
			continue;
		name = d->strtab + d->symtab[symidx].st_name;
		for (t = 0; t < ntargets; t++)
		{
			uintptr_t	slot;

			if (strcmp(name, targets[t].symbol) != 0)
				continue;
			slot = o->base + rel[i].r_offset;
			if (*(uintptr_t *) slot == (uintptr_t) targets[t].wrapper ||
				mc_write_word(slot, (uintptr_t) targets[t].wrapper, d))
				patched++;
			break;
		}
	}
	return patched;
}

/* retarget copies of a real function's address in the library's writable data */
static void
mc_retarget_data(const McObject *o, const McDynamic *d, const McGotTarget *targets,
				 int ntargets)
{
	int			i;

	for (i = 0; i < o->phnum; i++)
	{
		const ElfW(Phdr) *ph = &o->phdr[i];
		uintptr_t	lo;
		uintptr_t	hi;
		uintptr_t	a;

		if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_W))
			continue;
		lo = TYPEALIGN(sizeof(uintptr_t), o->base + ph->p_vaddr);
		hi = o->base + ph->p_vaddr + ph->p_memsz;
		for (a = lo; a + sizeof(uintptr_t) <= hi; a += sizeof(uintptr_t))
		{
			uintptr_t	v = *(uintptr_t *) a;
			int			t;

			if (a >= d->relro_lo && a < d->relro_hi)
				continue;
			for (t = 0; t < ntargets; t++)
				if (targets[t].real != NULL && v == (uintptr_t) targets[t].real)
				{
					*(uintptr_t *) a = (uintptr_t) targets[t].wrapper;
					break;
				}
		}
	}
}

/*
 * Point the GOT slots of the object loaded at `base` (a foreign library, or
 * the PostgreSQL executable itself) for every target symbol at the target's
 * wrapper.  Returns the number of slots patched, or -1 (and why) when the
 * object's tables cannot be read.
 */
int
mc_got_patch_object(uintptr_t base, bool main_program, const McGotTarget *targets,
					int ntargets, char *why, size_t whylen)
{
	McObject	o;
	McDynamic	d;
	int			patched;

#ifdef MC_NO_GOT_SUPPORT
	snprintf(why, whylen, "this platform's relocations are not supported (x86-64 and AArch64 are)");
	return -1;
#endif
	memset(&o, 0, sizeof(o));
	o.base = base;
	o.main_program = main_program;
	dl_iterate_phdr(mc_find_object, &o);
	if (!o.found)
	{
		snprintf(why, whylen, "it is no longer loaded");
		return -1;
	}
	if (!mc_read_dynamic(&o, &d, why, whylen))
		return -1;
	patched = mc_patch_relocs(&o, &d, d.jmprel, d.pltrelsz, targets, ntargets);
	patched += mc_patch_relocs(&o, &d, d.rela, d.relasz, targets, ntargets);
	if (!main_program)
		mc_retarget_data(&o, &d, targets, ntargets);
	return patched;
}
