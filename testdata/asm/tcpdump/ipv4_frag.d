(000) ld       #0x0
(001) ldh      [6]
(002) jset     #0x1fff          jt 3	jf 4
(003) ret      #262144
(004) ret      #0
