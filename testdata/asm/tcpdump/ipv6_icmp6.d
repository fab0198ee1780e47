(000) ld       #0x0
(001) ldb      [6]
(002) jeq      #0x3a            jt 6	jf 3
(003) jeq      #0x2c            jt 4	jf 7
(004) ldb      [40]
(005) jeq      #0x3a            jt 6	jf 7
(006) ret      #262144
(007) ret      #0
