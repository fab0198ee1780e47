(000) ldh      [12]
(001) jeq      #0x800           jt 2	jf 12
(002) ldb      [23]
(003) jeq      #0x11            jt 4	jf 12
(004) ldh      [20]
(005) jset     #0x1fff          jt 12	jf 6
(006) ldxb     4*([14]&0xf)
(007) ldb      [x + 22]
(008) jeq      #0x12            jt 9	jf 12
(009) ldh      [x + 24]
(010) jset     #0x8000          jt 12	jf 11
(011) ret      #262144
(012) ret      #0
