/*-------------------------------------------------------------------------
 *
 * thunk.c
 *		Call thunks: an address that, when called with any arguments, runs
 *		an enter handler, the original function with those very arguments,
 *		then a leave handler, and returns what the function returned.
 *
 * A foreign library hands PostgreSQL tables of function pointers: an index
 * access method's IndexAmRoutine, a table AM's TableAmRoutine, an FDW's
 * FdwRoutine, custom-scan methods.  PostgreSQL calls through them directly,
 * so no hook sees the library being entered.  entry/routines.c puts a thunk
 * in place of each pointer; its handlers open and close a segment for the
 * library, so that one entry into the library is one call, whichever way it
 * was entered.
 *
 * The thunks are MC_NUM_THUNKS stubs of two instructions each (put the
 * stub's number in a scratch register, jump) and one common routine.  The
 * common routine saves the argument registers, calls the enter handler,
 * copies the caller's stack arguments (16 words: more than any routine of
 * PostgreSQL's takes) below its own frame, restores the registers and
 * calls the original; then it saves the return registers, calls the leave
 * handler (which may replace an integer or pointer result) and returns.  A
 * second set of stubs shares the numbers and the originals, with a common
 * routine for functions of one integer or pointer argument and result (V1
 * functions, Datum fn(FunctionCallInfo)): it keeps only those.  Both carry
 * unwind information, so stack traces (backtrace(), gdb) pass through them.  An error thrown by the original longjmps past the leave
 * handler: the segment stack is then unwound by whoever catches it, as for
 * every other entry point.
 *
 * x86-64 (System V ABI) only: elsewhere mc_thunk_available() is false and
 * the callers say so as a coverage gap.  Nothing here allocates or reports
 * an error.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "platform/platform.h"

/* the originals, read by the common routine (so not static) */
void	   *mc_thunk_fns[MC_NUM_THUNKS] __attribute__((visibility("hidden"), used));
static int	nthunks = 0;

static McThunkEnter enter_handler = NULL;
static McThunkLeave leave_handler = NULL;

int			mc_thunk_enter(uint32 k) __attribute__((visibility("hidden"), used));
uintptr_t	mc_thunk_leave(uint32 k, uintptr_t ret, int cookie) __attribute__((visibility("hidden"), used));

#if defined(__x86_64__) && defined(__ELF__)

/*
 * The pieces both common routines share: a frame with rbx and r12 saved
 * (and unwind information for it), and the stubs that jump to a routine
 * with their number in r11.
 */
#define MC_THUNK_BEGIN(name) \
	"	.p2align 4\n" \
	"	.type " name ", @function\n" \
	name ":\n" \
	"	.cfi_startproc\n" \
	"	pushq %rbp\n" \
	"	.cfi_def_cfa_offset 16\n" \
	"	.cfi_offset %rbp, -16\n" \
	"	movq %rsp, %rbp\n" \
	"	.cfi_def_cfa_register %rbp\n" \
	"	pushq %rbx\n" \
	"	.cfi_offset %rbx, -24\n" \
	"	pushq %r12\n" \
	"	.cfi_offset %r12, -32\n"

#define MC_THUNK_END(name) \
	"	leaq -16(%rbp), %rsp\n" \
	"	popq %r12\n" \
	"	popq %rbx\n" \
	"	popq %rbp\n" \
	"	.cfi_def_cfa %rsp, 8\n" \
	"	ret\n" \
	"	.cfi_endproc\n" \
	"	.size " name ", .-" name "\n" \
	"\n"

#define MC_THUNK_STUBS(name, common) \
	"	.p2align 4\n" \
	"	.type " name ", @function\n" \
	name ":\n" \
	"	.set mc_thunk_i, 0\n" \
	"	.rept " CppAsString2(MC_NUM_THUNKS) "\n" \
	"	.p2align 4\n" \
	"	movl $mc_thunk_i, %r11d\n" \
	"	jmp " common "\n" \
	"	.set mc_thunk_i, mc_thunk_i + 1\n" \
	"	.endr\n" \
	"	.size " name ", .-" name "\n" \
	"\n"

/*
 * The common routine's frame, below the saved rbp, rbx and r12 (rsp is
 * 16-byte aligned at every call it makes):
 *	  0 .. 127	the caller's stack arguments, copied for the original
 *	128 .. 175	rdi, rsi, rdx, rcx, r8, r9
 *	176			rax (the vector-register count of a variadic call)
 *	184			the enter handler's cookie
 *	192 .. 319	xmm0 .. xmm7
 *
 * The one-argument routine keeps the argument in r12 and the cookie at 0.
 */
__asm__(
	"	.text\n"
	MC_THUNK_BEGIN("mc_thunk_common")
	"	subq $320, %rsp\n"
	"	movq %rdi, 128(%rsp)\n"
	"	movq %rsi, 136(%rsp)\n"
	"	movq %rdx, 144(%rsp)\n"
	"	movq %rcx, 152(%rsp)\n"
	"	movq %r8, 160(%rsp)\n"
	"	movq %r9, 168(%rsp)\n"
	"	movq %rax, 176(%rsp)\n"
	"	movdqa %xmm0, 192(%rsp)\n"
	"	movdqa %xmm1, 208(%rsp)\n"
	"	movdqa %xmm2, 224(%rsp)\n"
	"	movdqa %xmm3, 240(%rsp)\n"
	"	movdqa %xmm4, 256(%rsp)\n"
	"	movdqa %xmm5, 272(%rsp)\n"
	"	movdqa %xmm6, 288(%rsp)\n"
	"	movdqa %xmm7, 304(%rsp)\n"
	"	movl %r11d, %ebx\n"
	"	movl %ebx, %edi\n"
	"	call mc_thunk_enter\n"
	"	movl %eax, 184(%rsp)\n"
	"	leaq mc_thunk_fns(%rip), %rax\n"
	"	movq (%rax,%rbx,8), %r12\n"
	"	leaq 16(%rbp), %rsi\n"
	"	movq %rsp, %rdi\n"
	"	movl $16, %ecx\n"
	"	rep movsq\n"
	"	movq 128(%rsp), %rdi\n"
	"	movq 136(%rsp), %rsi\n"
	"	movq 144(%rsp), %rdx\n"
	"	movq 152(%rsp), %rcx\n"
	"	movq 160(%rsp), %r8\n"
	"	movq 168(%rsp), %r9\n"
	"	movq 176(%rsp), %rax\n"
	"	movdqa 192(%rsp), %xmm0\n"
	"	movdqa 208(%rsp), %xmm1\n"
	"	movdqa 224(%rsp), %xmm2\n"
	"	movdqa 240(%rsp), %xmm3\n"
	"	movdqa 256(%rsp), %xmm4\n"
	"	movdqa 272(%rsp), %xmm5\n"
	"	movdqa 288(%rsp), %xmm6\n"
	"	movdqa 304(%rsp), %xmm7\n"
	"	call *%r12\n"
	"	movq %rdx, 136(%rsp)\n"
	"	movdqa %xmm0, 192(%rsp)\n"
	"	movdqa %xmm1, 208(%rsp)\n"
	"	movl %ebx, %edi\n"
	"	movq %rax, %rsi\n"
	"	movl 184(%rsp), %edx\n"
	"	call mc_thunk_leave\n"
	"	movq 136(%rsp), %rdx\n"
	"	movdqa 192(%rsp), %xmm0\n"
	"	movdqa 208(%rsp), %xmm1\n"
	MC_THUNK_END("mc_thunk_common")
	MC_THUNK_STUBS("mc_thunk_stubs", "mc_thunk_common")
	"\n"
	MC_THUNK_BEGIN("mc_thunk_one_common")
	"	subq $16, %rsp\n"
	"	movq %rdi, %r12\n"
	"	movl %r11d, %ebx\n"
	"	movl %ebx, %edi\n"
	"	call mc_thunk_enter\n"
	"	movl %eax, 0(%rsp)\n"
	"	movq %r12, %rdi\n"
	"	leaq mc_thunk_fns(%rip), %rax\n"
	"	call *(%rax,%rbx,8)\n"
	"	movl %ebx, %edi\n"
	"	movq %rax, %rsi\n"
	"	movl 0(%rsp), %edx\n"
	"	call mc_thunk_leave\n"
	MC_THUNK_END("mc_thunk_one_common")
	MC_THUNK_STUBS("mc_thunk_one_stubs", "mc_thunk_one_common")
);

extern char mc_thunk_stubs[] __attribute__((visibility("hidden")));
extern char mc_thunk_one_stubs[] __attribute__((visibility("hidden")));

#define MC_THUNK_STRIDE 16
#define MC_HAVE_THUNKS 1
#endif

bool
mc_thunk_available(void)
{
#ifdef MC_HAVE_THUNKS
	return true;
#else
	return false;
#endif
}

/* the handlers (entry/routines.c, at start-up) */
void
mc_thunk_set_handlers(McThunkEnter enter, McThunkLeave leave)
{
	enter_handler = enter;
	leave_handler = leave;
}

/* a thunk calling fn; -1 when there is none left (or none on this platform) */
int
mc_thunk_make(void *fn)
{
#ifdef MC_HAVE_THUNKS
	if (fn == NULL || nthunks >= MC_NUM_THUNKS)
		return -1;
	mc_thunk_fns[nthunks] = fn;
	return nthunks++;
#else
	(void) fn;
	return -1;
#endif
}

/* the address to call thunk k by */
void *
mc_thunk_address(int k)
{
#ifdef MC_HAVE_THUNKS
	return mc_thunk_stubs + (Size) k * MC_THUNK_STRIDE;
#else
	(void) k;
	return NULL;
#endif
}

/*
 * The same thunk, for a function of one integer or pointer argument that
 * returns one (a V1 function: Datum fn(FunctionCallInfo)): its common
 * routine keeps only that argument and that result, a third of the
 * general one's work on every call.
 */
void *
mc_thunk_address_one_arg(int k)
{
#ifdef MC_HAVE_THUNKS
	return mc_thunk_one_stubs + (Size) k * MC_THUNK_STRIDE;
#else
	(void) k;
	return NULL;
#endif
}

/* the thunk an address is (either kind), or -1 */
int
mc_thunk_of_address(const void *addr)
{
#ifdef MC_HAVE_THUNKS
	uintptr_t	a = (uintptr_t) addr;
	uintptr_t	stubs[2] = {(uintptr_t) mc_thunk_stubs, (uintptr_t) mc_thunk_one_stubs};
	int			i;

	for (i = 0; i < 2; i++)
		if (a >= stubs[i] && a < stubs[i] + (uintptr_t) nthunks * MC_THUNK_STRIDE &&
			(a - stubs[i]) % MC_THUNK_STRIDE == 0)
			return (int) ((a - stubs[i]) / MC_THUNK_STRIDE);
#else
	(void) addr;
#endif
	return -1;
}

void *
mc_thunk_target(int k)
{
	return (k >= 0 && k < nthunks) ? mc_thunk_fns[k] : NULL;
}

/* called by the common routine, before the original */
int
mc_thunk_enter(uint32 k)
{
	return enter_handler ? enter_handler(k) : 0;
}

/* called by the common routine, after the original: what the caller gets */
uintptr_t
mc_thunk_leave(uint32 k, uintptr_t ret, int cookie)
{
	return leave_handler ? leave_handler(k, ret, cookie) : ret;
}
