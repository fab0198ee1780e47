# Forms bpfasm reads that Linux's bpf_asm refuses (see testdata/README.md). Each block,
# up to a blank line, is a program of its own: tests/it/asm.rs checks that bpf_asm refuses
# every block and that bpfasm assembles the file to the bytecode listed there.

# `[x+k]` without a space: bpf_asm's lexer reads `+6` as a signed number, not as the operator.
	ld [x+6]
	ret a

	ldb [%x+7]
	ret a

# A one-character label: bpf_asm's labels are at least two characters long.
	jeq #1, t
t:	ret a
