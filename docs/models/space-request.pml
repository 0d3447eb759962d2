/* Spin model of the producer's space request (src/ring/producer.rs, signal.rs).
   Run: spin -a -DFIX space-request.pml && gcc -O2 -w -o pan pan.c && ./pan
   -DFIX is the code as it is: the check after a request takes it back when the consumer
   asked no longer holds space back. Without it (the code before) pan finds an invalid end
   state: the producer asleep for ever (in the real ring, until its 100 ms backstop). */
/* The producer blocked on space asks the slowest consumer, in that consumer's word,
   to wake it; consumers answer after they advance; a leaving consumer clears its word
   and wakes. No timeouts: a producer asleep for ever while space is free is a lost
   wake-up (invalid end state). Sequentially consistent (the membarrier argument is
   separate). Consumer 0 is the slowest and may leave; consumer 1 stays and reads. */
#define K 1          /* free enough when every attached backlog <= K */
#define FREE 0
#define LIVE 1
byte backlog[2] = {3, 2};
byte owner[2] = {LIVE, LIVE};
bool req[2];          /* the request bits of each consumer's word */
byte gen[2];          /* changes whenever the word is rewritten (tag, release) */
bool asleep;          /* the producer is in futex_wait on word `sleepon` */
byte sleepon;
bool finished;

inline wake(s) { if :: asleep && sleepon == s -> asleep = false :: else -> skip fi }

proctype consumer(byte s; bool may_leave) {
  do
  :: backlog[s] > 0 && owner[s] == LIVE ->
       backlog[s]--;
       /* advance: load word, answer once free enough for the request (<= K) */
       atomic { if :: req[s] && backlog[s] <= K -> req[s] = false; gen[s]++; wake(s) :: else -> skip fi }
  :: may_leave && owner[s] == LIVE ->
       owner[s] = FREE;
       atomic { if :: req[s] -> req[s] = false; gen[s]++; wake(s) :: else -> req[s] = false; gen[s]++ fi }
       break
  :: backlog[s] == 0 -> break
  od
}

proctype producer() {
  byte slowest, asked, exp_gen; bool exp_req; bool have_ask = false;
  do
  :: /* check (scan) */
     if
     :: (owner[0] != LIVE || backlog[0] <= K) && (owner[1] != LIVE || backlog[1] <= K) -> break
     :: else ->
        if :: owner[0] == LIVE && (owner[1] != LIVE || backlog[0] >= backlog[1]) -> slowest = 0
           :: else -> slowest = 1 fi
     fi;
     /* announce: ask the slowest of that scan */
     atomic { req[slowest] = true; asked = slowest; exp_req = true; exp_gen = gen[slowest]; have_ask = true };
     /* check again */
     if
     :: (owner[0] != LIVE || backlog[0] <= K) && (owner[1] != LIVE || backlog[1] <= K) -> break
     :: else ->
#ifdef FIX
        /* the asked consumer no longer holds space back: withdraw (CAS) */
        atomic { if :: !(owner[asked] == LIVE && backlog[asked] > K) && req[asked] == exp_req && gen[asked] == exp_gen -> req[asked] = false; gen[asked]++ :: else -> skip fi }
#else
        skip
#endif
     fi;
     /* futex_wait: sleeps only while the word is what it was asked as */
     atomic { if :: req[asked] == exp_req && gen[asked] == exp_gen -> asleep = true; sleepon = asked :: else -> skip fi };
     (!asleep)
  od;
  finished = true
}

init { atomic { run consumer(0, true); run consumer(1, false); run producer() } }
