# Every bpf_asm mnemonic and operand form (column-0 '#' comment).
/* block comment
   over two lines */
	ldb [1]
	ldh [2]
	ld [3]
	ldb [x + 4]
	ldh [%x + 5]
	ld [ x + 6 ]
	ldi #7
	ldi 8
	ld #9
	ld #len
	ld len
	st M[0]
	ld M[0]
	ld #proto
	ldh type
	ldb #ifidx
	ld nla
	ld #nlan
	ld mark
	ld queue
	ld hatype
	ld rxhash
	ld cpu
	ld vlan_tci
	ld vlan_avail
	ld vlan_pr
	ld poff
	ld rand
	ld vlan_tpid
	ldx #10
	ldxi #11
	ldxi 12
	ldx #len
	ldx len
	stx M[1]
	ldx M[1]
	ldx 4*([14]&0xf)
	ldxb 4*([15]&0xf)
	add #1
	add x
	ADD %X ; upper case works too
	sub #2
	sub x
	mul #3
	mul x
	div #4
	div x
	mod #5
	mod x
	and #6
	and x
	or #7
	or x
	xor #8
	xor x
	lsh #9
	lsh x
	rsh #10
	rsh x
	neg
	tax
	txa
	ld #0x10
	ld #0b11
	ld #017
	ld #-1
	jmp j1
j1:	ja j2
j2:	jeq #0x10, j3, j4
j3:	jeq x, j4
j4:	jeq %x, j5, j6
j5:	jneq #1, j6
j6:	jne x, j7
j7:	jlt #2, j8
j8:	jle #3, j9
j9:	jgt #4, j10, j11
j10:	jgt x, j11
j11:	jge #5, j12, j13
j12:	jge x, j13
j13:	jset #6, j14, j15
j14:	jset x, j15
j15:	ret a
	ret %a
	ret x
	ret #0
