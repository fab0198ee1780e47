/*
 * Test helper: runs classic BPF programs with libpcap's interpreter (bpf_filter) over every
 * packet of a capture and prints one line per program: the verdicts, space separated.
 *
 * Usage: libpcap_verdicts CAPTURE < programs
 * where each line of standard input is a program in xt_bpf text form "N,c t f k,c t f k,...".
 */
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct packet {
    unsigned char *data;
    unsigned int caplen, wirelen;
};

int main(int argc, char **argv)
{
    char errbuf[PCAP_ERRBUF_SIZE];
    if (argc != 2) {
        fprintf(stderr, "usage: %s CAPTURE < programs\n", argv[0]);
        return 2;
    }
    pcap_t *capture = pcap_open_offline(argv[1], errbuf);
    if (!capture) {
        fprintf(stderr, "%s\n", errbuf);
        return 2;
    }
    size_t count = 0, room = 1024;
    struct packet *packets = malloc(room * sizeof *packets);
    struct pcap_pkthdr *header;
    const unsigned char *bytes;
    while (pcap_next_ex(capture, &header, &bytes) == 1) {
        if (count == room) {
            room *= 2;
            packets = realloc(packets, room * sizeof *packets);
        }
        packets[count].data = malloc(header->caplen ? header->caplen : 1);
        memcpy(packets[count].data, bytes, header->caplen);
        packets[count].caplen = header->caplen;
        packets[count].wirelen = header->len;
        count++;
    }
    static char line[1 << 20];
    while (fgets(line, sizeof line, stdin)) {
        char *at = line;
        unsigned long n = strtoul(at, &at, 10);
        if (*at != ',' || n == 0 || n > 4096)
            return 2;
        at++;
        struct bpf_insn *insns = calloc(n, sizeof *insns);
        for (unsigned long i = 0; i < n; i++) {
            unsigned long code = strtoul(at, &at, 10);
            unsigned long jt = strtoul(at, &at, 10);
            unsigned long jf = strtoul(at, &at, 10);
            unsigned long k = strtoul(at, &at, 10);
            insns[i].code = (unsigned short)code;
            insns[i].jt = (unsigned char)jt;
            insns[i].jf = (unsigned char)jf;
            insns[i].k = (unsigned int)k;
            if (*at == ',')
                at++;
        }
        for (size_t p = 0; p < count; p++)
            printf(p ? " %u" : "%u", bpf_filter(insns, packets[p].data, packets[p].wirelen, packets[p].caplen));
        printf("\n");
        free(insns);
    }
    return 0;
}
