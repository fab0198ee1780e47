(000) ldh      [0]
(001) jeq      #0x86dd          jt 2	jf 6
(002) ldb      [26]
(003) jeq      #0x11            jt 4	jf 15
(004) ldh      [62]
(005) jeq      #0x35            jt 14	jf 15
(006) jeq      #0x800           jt 7	jf 15
(007) ldb      [29]
(008) jeq      #0x11            jt 9	jf 15
(009) ldh      [26]
(010) jset     #0x1fff          jt 15	jf 11
(011) ldxb     4*([20]&0xf)
(012) ldh      [x + 22]
(013) jeq      #0x35            jt 14	jf 15
(014) ret      #262144
(015) ret      #0
