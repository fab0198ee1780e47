(000) ldh      [12]
(001) jeq      #0x86dd          jt 2	jf 7
(002) ldb      [20]
(003) jeq      #0x11            jt 4	jf 7
(004) ldh      [56]
(005) jeq      #0x35            jt 6	jf 7
(006) ret      #262144
(007) ret      #0
