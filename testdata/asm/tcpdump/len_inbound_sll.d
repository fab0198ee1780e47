(000) ld       #pktlen
(001) jgt      #0x64            jt 2	jf 5
(002) ldh      [0]
(003) jeq      #0x4             jt 5	jf 4
(004) ret      #262144
(005) ret      #0
