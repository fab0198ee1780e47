(000) ldh      [12]
(001) jeq      #0x8100          jt 4	jf 2
(002) jeq      #0x88a8          jt 4	jf 3
(003) jeq      #0x9100          jt 4	jf 15
(004) ldh      [16]
(005) jeq      #0x800           jt 6	jf 8
(006) ldb      [27]
(007) jeq      #0x11            jt 14	jf 15
(008) jeq      #0x86dd          jt 9	jf 15
(009) ldb      [24]
(010) jeq      #0x11            jt 14	jf 11
(011) jeq      #0x2c            jt 12	jf 15
(012) ldb      [58]
(013) jeq      #0x11            jt 14	jf 15
(014) ret      #262144
(015) ret      #0
