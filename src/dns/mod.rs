//! DNS wire view: header, questions, records, EDNS, with a guard against compression loops.
