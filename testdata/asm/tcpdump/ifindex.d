(000) ld       [ifidx]
(001) jeq      #0x3             jt 2	jf 3
(002) ret      #262144
(003) ret      #0
