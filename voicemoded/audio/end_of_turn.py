"""End of turn: one object decides when the person has finished, from what was heard at each pause.

Inputs flow one way. The endpointer (:mod:`voicemoded.audio.endpointing`) measures the pauses and the
noise; at each pause a turn predictor (the converse loop's: STT on the answer so far, with the acoustic
end-of-turn model beside it) returns a :class:`TurnVerdict`; :class:`EndOfTurn` keeps them for the
current answer and says how much silence the turn needs before it is over. The policy itself is the
pure function :func:`decide` over :class:`PauseFeatures`, with its thresholds in :class:`TurnPolicy`,
so the benchmark can replay recorded features through exactly the rule the daemon runs.

The rule, in words. A turn never ends before ``bound_s`` of silence unless what was heard says it may:

- the words at the pause form a complete clause (:mod:`voicemoded.audio.completeness`), Whisper was
  sure of them, and the room is quiet enough for that to mean something: the turn may end after
  ``words_end_s``, or ``quick_end_s`` when the acoustic model also hears a finished voice;
- the words are a bare preamble ("okay", "so", "yes", "let me think"): people go on after those, so
  the turn waits ``preamble_s``;
- the words are plainly unfinished ("... and", "go to the"): the turn waits ``unfinished_s``;
- nothing trustworthy was heard: the bound.

The person's own pauses adapt the silences, plus ``pause_margin_s`` (people who pause long, pause long
again): the bound waits out the longest pause so far in this answer and in their recent answers; a
quick end waits out the longest pause in this answer that came after words that could have ended it
(a person who went on after a finished-looking clause once may do it again; a pause after "so" or
"the" says nothing about that).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from voicemoded.audio.completeness import TextState, text_state, words_of


@dataclass(frozen=True, slots=True)
class TurnVerdict:
    """What a turn predictor heard at one pause. ``payload`` (the transcript it made) rides along to
    the result, so a turn that ends at this pause needs no second transcription."""

    text: str | None = None
    """The transcript of the answer so far; None when it was not transcribed (a remote STT endpoint is
    asked only when the voice sounds finished)."""
    probability: float | None = None
    """The acoustic end-of-turn model's probability that the speaker has finished (None: no model)."""
    avg_logprob: float | None = None
    """Whisper's lowest segment average log-probability (None: the endpoint did not say)."""
    no_speech_prob: float | None = None
    """Whisper's highest segment no-speech probability (None: the endpoint did not say)."""
    payload: object = None


@dataclass(frozen=True, slots=True)
class PauseFeatures:
    """Everything :func:`decide` looks at, for the pause the person is in now."""

    verdict: TurnVerdict | None = None
    """What the predictor heard at this pause; None while it is still listening, or with no predictor."""
    pauses: tuple[float, ...] = ()
    """Earlier pauses in this answer (last voiced sample to the next), in seconds."""
    complete_pauses: tuple[float, ...] = ()
    """Those of them after words that could have ended the turn quickly (complete, trusted)."""
    recent_pause_s: float = 0.0
    """The longest pause inside the person's recent answers."""
    snr_db: float | None = None
    """How far the person's voice stands above the room's noise floor (None: not measured)."""


@dataclass(frozen=True, slots=True)
class Decision:
    """The silence that ends the turn at this pause, and the name of the rule that set it."""

    silence_s: float
    rule: str


@dataclass(frozen=True, slots=True)
class TurnPolicy:
    """The thresholds of :func:`decide`. The defaults are the fastest policy that cut off no answer at
    a pause of up to 1.0 s on the tuning half of ``benchmarks/turn_taking.py``'s corpus (it cut none
    on the test half either); quicker ends cut people off there, and the README shows the trade-off."""

    bound_s: float = 1.2
    """Silence that ends the turn whatever was heard (VOICEMODE_SILENCE_THRESHOLD_MS / 1000)."""
    bound_max_s: float = 2.5
    """The most the bound grows for a person who pauses long."""
    pause_margin_s: float = 0.3
    """How much longer than the person's longest pause any end must wait."""
    quick_end_s: float = 1.1
    """Silence after complete, trusted words that the acoustic model also hears as finished."""
    words_end_s: float = 1.2
    """Silence after complete, trusted words when the voice is not known to sound finished."""
    preamble_s: float = 1.3
    """Silence after a bare opener, filler, acknowledgement or discourse marker ("okay", "so", "yes")."""
    unfinished_s: float = 2.5
    """Silence after plainly unfinished words ("... and", "go to the"), as Pipecat waits when its model
    says "not finished"."""
    finished_probability: float = 0.9
    """The acoustic model's probability at or above which the voice sounds finished."""
    unfinished_probability: float = 0.0
    """Below this the voice sounds unfinished, and complete words wait for the bound (0: never)."""
    min_avg_logprob: float = -1.0
    """Whisper less sure than this (average log-probability) is not trusted to end the turn early."""
    max_no_speech_prob: float = 0.6
    """Whisper thinking it more likely than this that it heard no speech is not trusted either."""
    min_snr_db: float = 15.0
    """A voice less than this far above the noise floor is in a noisy room: no quick end."""
    min_words: int = 3
    """A complete-looking transcript of fewer words waits like a preamble: the first words of an
    answer ("Okay", "All right", "Do it") are as often an opener as the whole answer, and in noise
    Whisper turns a filler into a short finished-looking phrase ("um" -> "I'm there.")."""
    noisy_snr_db: float = 20.0
    """Below this the VAD loses the quiet edges of words, so it hears pauses longer than they are..."""
    noise_margin_s: float = 0.3
    """...by up to this much (measured at 10 dB SNR): every silence the policy asks for grows by it."""
    history: int = 5
    """How many recent answers' pauses are remembered."""


QUICK_RULES = ("words and voice finished", "words finished")
"""The rules of a quick end (sooner than the bound), as :attr:`Decision.rule` names them."""


def _trusted(verdict: TurnVerdict, snr_db: float | None, policy: TurnPolicy) -> bool:
    if verdict.avg_logprob is not None and verdict.avg_logprob < policy.min_avg_logprob:
        return False
    if verdict.no_speech_prob is not None and verdict.no_speech_prob > policy.max_no_speech_prob:
        return False
    return snr_db is None or snr_db >= policy.min_snr_db


def decide(features: PauseFeatures, policy: TurnPolicy) -> Decision:
    """The silence the turn needs at this pause (pure: the daemon and the benchmark both call it)."""
    decision = _decide(features, policy)
    if features.snr_db is not None and features.snr_db < policy.noisy_snr_db:
        return Decision(decision.silence_s + policy.noise_margin_s, decision.rule + ", in noise")
    return decision


def _decide(features: PauseFeatures, policy: TurnPolicy) -> Decision:
    longest = max((*features.pauses, features.recent_pause_s), default=0.0)
    bound = min(policy.bound_max_s, max(policy.bound_s, longest + policy.pause_margin_s if longest else 0.0))
    after_complete = max(features.complete_pauses, default=0.0)
    floor = after_complete + policy.pause_margin_s if after_complete else 0.0
    verdict = features.verdict
    if verdict is None or verdict.text is None:
        return Decision(bound, "silence")
    state = text_state(verdict.text)
    if state is TextState.EMPTY:
        return Decision(bound, "silence")
    if state is TextState.UNFINISHED:
        return Decision(max(bound, policy.unfinished_s), "words unfinished")
    if state is TextState.PREAMBLE:
        return Decision(max(bound, policy.preamble_s), "opener only")
    if len(words_of(verdict.text)) < policy.min_words:
        return Decision(max(bound, policy.preamble_s), "few words")
    if not _trusted(verdict, features.snr_db, policy):
        return Decision(bound, "silence (unsure of the words)")
    p = verdict.probability
    if p is not None and p < policy.unfinished_probability:
        return Decision(bound, "silence (voice unfinished)")
    if p is not None and p >= policy.finished_probability:
        quick, rule = policy.quick_end_s, QUICK_RULES[0]
    else:
        quick, rule = policy.words_end_s, QUICK_RULES[1]
    return Decision(min(bound, max(quick, floor)), rule)


@dataclass
class PauseHistory:
    """The longest pause inside each of the person's recent answers (one per Listener: one person)."""

    size: int = 5
    _longest: deque[float] = field(default_factory=deque)

    def add(self, pauses: list[float]) -> None:
        self._longest.append(max(pauses, default=0.0))
        while len(self._longest) > self.size:
            self._longest.popleft()

    @property
    def longest(self) -> float:
        return max(self._longest, default=0.0)


class EndOfTurn:
    """One answer's end-of-turn state: the pause now, the verdict heard at it, the pauses before.

    The endpointer calls :meth:`pause` / :meth:`resume` as the person pauses and goes on, the recorder
    :meth:`hear` when a predictor's verdict arrives, and the endpointer asks :meth:`decision` every
    frame of silence. A verdict for an earlier pause is ignored: its audio is no longer the answer.
    """

    def __init__(self, policy: TurnPolicy | None = None, *, recent_pause_s: float = 0.0) -> None:
        self.policy = policy or TurnPolicy()
        self.recent_pause_s = recent_pause_s
        self.pauses: list[float] = []
        self.complete_pauses: list[float] = []
        self.pause_id = 0
        self.snr_db: float | None = None
        self.verdict: TurnVerdict | None = None
        self._decision = decide(self.features(), self.policy)

    def features(self) -> PauseFeatures:
        return PauseFeatures(
            self.verdict, tuple(self.pauses), tuple(self.complete_pauses), self.recent_pause_s, self.snr_db
        )

    def pause(self, pause_id: int, *, snr_db: float | None = None) -> None:
        self.pause_id, self.snr_db, self.verdict = pause_id, snr_db, None
        self._decision = decide(self.features(), self.policy)

    def resume(self, pause_s: float) -> None:
        if self.verdict is not None and self._decision.rule.startswith(QUICK_RULES):
            self.complete_pauses.append(pause_s)
        self.pauses.append(pause_s)
        self.verdict = None
        self._decision = decide(self.features(), self.policy)

    def hear(self, pause_id: int, verdict: TurnVerdict) -> bool:
        """Take a predictor's verdict; False when it is stale (the person spoke since)."""
        if pause_id != self.pause_id:
            return False
        self.verdict = verdict
        self._decision = decide(self.features(), self.policy)
        return True

    @property
    def decision(self) -> Decision:
        return self._decision

    @property
    def payload(self) -> object:
        """The current verdict's payload (the transcript), when one was heard at this pause."""
        return None if self.verdict is None else self.verdict.payload
