"""Field notes for the demo course: written for the demo, never taken from real notes.

The prose follows the study's cases: contexts (patients, confusing
experiences in medical education, privacy and profession), triggers
(witnessing injustice, value conflict, difficult human relationships, an
incurable patient, role confusion) and discussion themes (feelings about
patients, negative role models, co-operation with other professionals,
building a professional identity). Students appear only by pseudonym.

The two co-leaders write in two voices: coleader1 short and factual, a
clinical teacher noting context and trigger; coleader2 closer to feelings
and the group process. Notes are written through fieldnotes.services, so the
demo passes the same identifier check and keeps the same history as notes
typed in the app. Everything is chosen from the session's number, its cases
and its attendance: no randomness, the same demo every time.

Placeholders: {p} is the presenter's pseudonym, {o} another student present.
"""

from __future__ import annotations

from dataclasses import dataclass

from sessions.models import Meeting

from . import services
from .models import FieldNote, NoteSection


@dataclass(frozen=True)
class CaseProse:
    case: tuple[str, str]  # the case section, by coleader1 and by coleader2
    discussion: tuple[tuple[str, str], tuple[str, str]]  # two discussion sentences per voice


CASES: dict[str, CaseProse] = {
    "A dying patient's family on the ward": CaseProse(
        case=(
            "{p} described a ward placement where an elderly man was dying of heart failure and his family came "
            "every evening. His daughters asked {p} each night whether their father was in pain, and {p} did not "
            "know what a student was allowed to say. The ward staff seemed to avoid the room after the morning round.",
            "{p} spoke quietly about the family of a dying patient who kept waiting by the bed for a doctor to come. "
            "{p} became the one they talked to, because the student was the only person in a white coat who stayed. "
            "Telling it, {p} wondered aloud whether staying had been kindness or simply not knowing how to leave.",
        ),
        discussion=(
            ("The group talked about what a student may and may not tell relatives, and several had been in the "
             "same position without any guidance.",
             "{o} pointed out that the staff avoiding the room was itself a message to the family."),
            ("Much of the talk was about the helplessness of standing beside death with nothing to offer but "
             "presence.",
             "{o} said they had never seen anyone teach how to sit with a family, only how to present a case."),
        ),
    ),
    "The consultant who mocked a patient on the round": CaseProse(
        case=(
            "On a surgical round the consultant made a joke about a patient's weight while standing at the foot of "
            "the bed, and the team laughed. {p} laughed too and felt ashamed of it afterwards. The patient said "
            "nothing and looked at the wall.",
            "{p} brought a scene from a surgical round where a senior doctor mocked a patient in front of the whole "
            "team. What stayed with {p} was not the joke itself but their own laughter, joining in to belong. The "
            "anger in the telling was aimed as much at themself as at the consultant.",
        ),
        discussion=(
            ("The discussion moved quickly to negative role models and how students learn what is acceptable by "
             "watching their seniors.",
             "Several students said they would not dare to object on a round, because the consultant also "
             "assesses them."),
            ("The group stayed a long time with the shame of laughing along, and {o} admitted the same had happened "
             "to them in their first clinical year.",
             "The leader asked what the patient might have felt, which turned the talk from the consultant to the "
             "person in the bed."),
        ),
    ),
    "A friend asked me for a prescription": CaseProse(
        case=(
            "A friend asked {p} to get a prescription for sleeping pills through a doctor {p} had worked for in a "
            "summer job. {p} refused but felt the friendship cool afterwards. The question was whether a medical "
            "student already carries a doctor's responsibility among friends.",
            "{p} told of a friend who asked, half joking, whether {p} could sort out a prescription for strong "
            "painkillers. {p} said no, then spent days wondering whether the refusal had been too harsh and whether "
            "the friend was actually in trouble. The case was about where friendship ends and the profession begins.",
        ),
        discussion=(
            ("The group discussed the boundary between private life and the profession, which several felt arrives "
             "long before the licence does.",
             "{o} described relatives who already ask for medical advice at family dinners."),
            ("The talk returned several times to the guilt of refusing someone close, and to the worry behind the "
             "request that nobody had asked about.",
             "The leader noted that the group itself had become a place to ask what kind of doctor each of them "
             "wants to be."),
        ),
    ),
    "A patient who reminded me of my grandfather": CaseProse(
        case=(
            "On a geriatric ward {p} looked after an old man with pneumonia who resembled {p}'s late grandfather in "
            "his way of speaking and in his hands. {p} found it hard to examine him as a patient and spent more time "
            "at his bedside than with the others. When he was transferred, {p} felt an unexpected grief.",
            "{p} described an elderly patient who reminded them so strongly of their grandfather that the clinical "
            "task became blurred. The student wanted to protect him, and was irritated with the nurses for treating "
            "him like any other patient. {p} was briefly in tears while telling, and the group gave it room.",
        ),
        discussion=(
            ("The group talked about how personal history enters the room with every patient, and whether that "
             "helps or hinders care.",
             "{o} asked whether doctors are supposed to switch such feelings off, and nobody thought it possible."),
            ("The discussion was warm and personal; many had met a patient who carried a family member's face.",
             "The leader helped the group see the feelings as information about the relationship rather than as a "
             "weakness."),
        ),
    ),
    "Left alone with a crying patient on call": CaseProse(
        case=(
            "During an evening on call {p} was sent to take a history from a woman who began to cry and could not "
            "stop. The resident was busy in the emergency department and {p} stayed alone with her for almost an "
            "hour. {p} did not know whether to go on with the questions or put the form aside.",
            "{p} was left alone on call with a patient who wept throughout the interview, and the telling carried "
            "the same feeling of being abandoned. {p} asked the group what one is supposed to do with another "
            "person's tears when nobody has taught it.",
        ),
        discussion=(
            ("The discussion was about supervision on call and how often students are left alone with tasks beyond "
             "their role.",
             "{o} said that the form had probably been a shelter for both the student and the patient."),
            ("Several students recognised the loneliness of the situation, and the group talked about staying with "
             "distress without trying to fix it.",
             "The leader remarked that the group had just done for the presenter what the presenter had done for "
             "the patient."),
        ),
    ),
    "An elderly patient who refused treatment": CaseProse(
        case=(
            "At the health centre {p} met an elderly woman who refused further tests for a likely cancer and wanted "
            "only to go home to her garden. The doctor accepted her decision quickly, and {p} felt the conversation "
            "had been too short. The case was about autonomy and whether the refusal had really been understood.",
            "{p} told of an old patient who calmly declined treatment, and of the student's own strong wish to "
            "persuade her. Underneath the respect for her choice {p} found anger, and then some embarrassment about "
            "the anger.",
        ),
        discussion=(
            ("The group debated autonomy against the duty to treat, with clear differences between the younger and "
             "the older students.",
             "{o} pointed out that respecting a refusal still takes time, which a busy health centre rarely has."),
            ("The discussion touched on the doctor's need to be useful and how a refusal can feel like a personal "
             "rejection.",
             "Quieter members joined in today, and {o} spoke for the first time at length."),
        ),
    ),
    "Unsure whether to mention a resident's mistake": CaseProse(
        case=(
            "{p} noticed that a resident had prescribed a dose that seemed too high for a patient with poor kidney "
            "function. {p} was not sure enough to say it directly and mentioned it to the nurse instead, who had it "
            "corrected. The resident never heard where the question came from.",
            "{p} brought a situation where a resident's mistake went unmentioned because {p} did not feel entitled "
            "to speak. The telling was full of uncertainty about a student's place in the hierarchy, and of relief "
            "that the patient came to no harm.",
        ),
        discussion=(
            ("The group talked about patient safety and the hierarchy that makes a student's observation hard to "
             "voice.",
             "{o} suggested that asking a question is easier than pointing out an error, and the group tried out "
             "wordings together."),
            ("Much of the talk was about the fear of being wrong in front of seniors, and how that fear shapes the "
             "kind of doctor one becomes.",
             "The leader asked what the resident might have wanted, and the group imagined a resident grateful for "
             "the question."),
        ),
    ),
    "A drug-seeking patient at the health centre": CaseProse(
        case=(
            "At the health centre a young man asked for benzodiazepines and became threatening when the doctor "
            "refused. {p} stood by the door, afraid and disappointed in the patient at the same time. Afterwards the "
            "doctor told {p} that such patients are a waste of time, which troubled {p} more than the threat.",
            "{p} described a tense consultation with a patient seeking medication, and the student's fear in the "
            "room. What lingered was the supervising doctor's contempt afterwards, and {p}'s uneasy agreement with "
            "it.",
        ),
        discussion=(
            ("The group discussed feelings about difficult patients, and how quickly a label like drug-seeker "
             "closes the conversation.",
             "{o} recalled a similar patient who turned out to be in withdrawal and frightened."),
            ("There was a lively exchange about fear and contempt, and whether they protect the doctor or only the "
             "doctor's pride.",
             "The leader kept bringing the group back to the patient's story, which nobody had heard in full."),
        ),
    ),
    "Examining a patient my own age": CaseProse(
        case=(
            "In an outpatient clinic {p} had to examine a patient of the same age and felt awkward throughout. The "
            "patient turned out to study at the same university, and {p} worried about meeting them on campus. The "
            "case raised questions of privacy on both sides.",
            "{p} spoke about the discomfort of examining someone of their own age, who could have been a friend. "
            "The usual distance of the professional role did not hold, and {p} felt both too close and too exposed.",
        ),
        discussion=(
            ("The group talked about privacy in a small academic community and how often students treat people "
             "they may meet socially.",
             "{o} suggested agreeing with the patient on how to greet each other afterwards."),
            ("The discussion was about the professional role as a protection, and what happens when it slips.",
             "Several students said their identity as doctors is still being built and is easily shaken."),
        ),
    ),
    "Told to just watch while bad news was given": CaseProse(
        case=(
            "{p} was present when a specialist told a patient that the cancer had spread, and had been told "
            "beforehand only to watch. The specialist spoke mostly in technical terms and left within ten minutes. "
            "{p} stayed silent, although the patient looked at the student several times.",
            "{p} described watching a patient receive bad news while under instructions to stay silent. The patient "
            "kept looking at {p}, and the student felt caught between the instruction and the plea in that look.",
        ),
        discussion=(
            ("The discussion was about how breaking bad news is taught, mostly by example, and about examples one "
             "does not want to follow.",
             "{o} said that silence can also be a form of presence, if it is chosen and not imposed."),
            ("The group stayed with the patient's look for a long time, and with the student's guilt at having given "
             "nothing back.",
             "The leader asked what {p} would have liked to say, and the answer was simple: that they were sorry."),
        ),
    ),
    "A neighbour asking about her test results": CaseProse(
        case=(
            "A neighbour who knew that {p} studies medicine asked what her blood test results meant. {p} looked at "
            "the printout on the stairs, gave a short explanation, and then worried about having overstepped. The "
            "case was about informal advice and the limits of a student's competence.",
            "{p} told of a neighbour who stopped the student on the stairs with a sheet of laboratory results. {p} "
            "wanted to help and also wanted to escape, and felt that the medical role had followed them home.",
        ),
        discussion=(
            ("The group discussed privacy and the profession outside the hospital, and where informal advice turns "
             "into responsibility.",
             "{o} described a simple rule: always suggest a call to the health centre."),
            ("The talk was about the loss of private life that comes with the profession, and how early it begins.",
             "Some felt proud to be asked and others burdened, and the group allowed both."),
        ),
    ),
    "A psychiatric patient who frightened me": CaseProse(
        case=(
            "On a psychiatry placement {p} interviewed a man with psychosis who suddenly stood up and came very "
            "close. Nothing happened, but {p} could not concentrate for the rest of the day. The staff had not "
            "mentioned any risk beforehand.",
            "{p} described a frightening interview with a psychotic patient, and the shame of being afraid of "
            "someone who was ill. The fear had made {p} avoid the patient for the rest of the placement, which the "
            "student now regretted.",
        ),
        discussion=(
            ("The group talked about safety on placements and what students should be told before an interview.",
             "{o} noted that fear is a reasonable response and belongs in supervision, not hidden."),
            ("The discussion focused on feelings toward patients who frighten us, and the wish to be a doctor who "
             "is never afraid.",
             "The leader pointed out how much the group relaxed once the fear was said aloud."),
        ),
    ),
    "Feeling useless beside an incurable cancer patient": CaseProse(
        case=(
            "{p} followed a young patient with incurable cancer on an oncology ward for two weeks. There was nothing "
            "to examine that mattered, and {p} felt useless on the daily round. On the last day the patient thanked "
            "{p} for their conversations, which surprised the student.",
            "{p} spoke about sitting beside an incurable patient and feeling that medicine had nothing left to "
            "offer. The patient's thanks at the end confused {p}, who had felt only helpless.",
        ),
        discussion=(
            ("The discussion was about what doctors do when cure is not possible, and whether conversation counts "
             "as treatment.",
             "{o} said that the thanks showed what the patient had valued, even if the student had not."),
            ("The group talked about helplessness and the need to be useful, which has run through several cases "
             "this term.",
             "The leader linked the case to a professional identity that includes being present without curing."),
        ),
    ),
    "Two specialists, two opposite instructions": CaseProse(
        case=(
            "On a medical ward a cardiologist and a nephrologist gave opposite instructions on a patient's fluid "
            "balance. The nurse asked {p} which one to follow, and {p} did not know. The case was about co-operation "
            "between specialties, with the student caught in the middle.",
            "{p} told of being caught between two specialists with conflicting instructions, and of being asked by "
            "the nurse to decide. The student felt used as a messenger and also, oddly, important.",
        ),
        discussion=(
            ("The group discussed co-operation with other medical professionals and who carries responsibility "
             "when specialists disagree.",
             "{o} thought the nurse had probably been testing the system rather than the student."),
            ("The talk was about the confusing role of a student, invisible one moment and asked to decide the next.",
             "The leader invited the group to think about the patient in the middle of the disagreement."),
        ),
    ),
    "A nurse who corrected me in front of the patient": CaseProse(
        case=(
            "While {p} was taking a blood sample, an experienced nurse corrected the technique in front of the "
            "patient. {p} felt humiliated, although the nurse was right. The patient afterwards told {p} not to "
            "worry about it, which made it worse.",
            "{p} described being corrected by a nurse at the bedside, and the hot shame of it. While telling the "
            "story {p} realised that the nurse had also been protecting the patient, and the anger turned into "
            "something more mixed.",
        ),
        discussion=(
            ("The group talked about co-operation with nurses and how much students learn from them, often without "
             "saying so.",
             "{o} suggested that being corrected in front of a patient is a skill in itself, both to give and to "
             "take."),
            ("The discussion moved between shame and gratitude, and the group talked about how a professional "
             "identity is built in front of others.",
             "The leader noted that the group could now hold mixed feelings without resolving them too quickly."),
        ),
    ),
}

# A sentence added to some case sections, so the same case told in another
# session does not read word for word the same. None: nothing added.
CASE_ADDITIONS = (
    ("It was the first time {p} had told anyone about it.",
     "This happened during a placement last term.",
     "{p} asked the group for no advice, only to be heard.",
     None),
    ("{p}'s voice changed when describing the moment itself.",
     None,
     "It was clear that the experience was still close.",
     "{p} hesitated before starting, and then spoke without stopping."),
)

OPENINGS = (
    (
        "With {present} students present, the leader opened by asking who had something to bring.",
        "A quiet start: {present} students present, and the first case came after a long silence.",
        "There were {present} students present, and the case was chosen quickly this time.",
        "The group began with some talk about exams before the leader invited the first case; {present} present.",
        "Attendance was {present}, and the group was ready before the leader was.",
        "The group settled quickly today, with {present} students present.",
        "With {present} present, the leader reminded the group that what is said stays in the room.",
    ),
    (
        "The atmosphere was expectant at the start, with {present} students in the room.",
        "The {present} students who came seemed tired at first, as if carrying the week with them.",
        "We began with a short round of how everyone was; {present} students were present.",
        "There was more laughter than usual at the start, with {present} students present.",
        "The room felt heavy from the beginning today; {present} students were present.",
        "All {present} who came found their way into the work quickly.",
        "A hesitant start with {present} students; the first minutes went on deciding who would present.",
    ),
)

CLOSINGS = (
    (
        "The leader closed by summing up the themes, and the session ended on time.",
        "The group stayed with the cases rather than giving advice, which was good work.",
        "Toward the end the group slipped into problem-solving, and the leader gently named it.",
        "The session ran a few minutes over time.",
        "A focused session; the {presenters} said that telling had helped.",
    ),
    (
        "At the end the {presenters} said they felt lighter, and the group seemed to share it.",
        "The closing round was thoughtful, and several people stayed to talk in the corridor.",
        "I noticed that the group is becoming braver in saying what it feels.",
        "The ending felt a little abrupt, and some things were left open for next time.",
        "We ended in a calm mood, and the two of us co-leaders agreed to talk the session through later.",
    ),
)

OTHER = (
    {4: "The room was too warm again; ask for another room or at least a fan."},
    {3: "{o} seemed subdued throughout; worth keeping an eye on next time.",
     6: "A note to us co-leaders: let silences run longer before speaking."},
)


@dataclass(frozen=True)
class _Session:
    meeting: Meeting
    cases: list  # CasePresentation, by order
    present: list[str]  # pseudonyms of those present, sorted


def _other(session: _Session, avoid: str, shift: int) -> str:
    """A present student other than `avoid`, chosen by the session and a shift."""
    others = [p for p in session.present if p != avoid] or session.present
    return others[(session.meeting.number + shift) % len(others)]


def case_text(session: _Session, case, voice: int, *, with_addition: bool = True) -> str:
    prose = CASES.get(case.title)
    presenter = case.presenter.pseudonym
    if prose is None:  # a title someone added to the demo list without prose
        return f"{presenter} presented a case: {case.title}."
    text = prose.case[voice]
    additions = CASE_ADDITIONS[voice]
    extra = additions[(session.meeting.number + case.order + voice) % len(additions)]
    if with_addition and extra:
        text = f"{text} {extra}"
    return text.format(p=presenter)


def discussion_sentences(session: _Session, voice: int) -> list[str]:
    number = session.meeting.number
    sentences = [OPENINGS[voice][number % len(OPENINGS[voice])].format(present=len(session.present))]
    for case in session.cases:
        prose = CASES.get(case.title)
        if prose is None:
            continue
        presenter = case.presenter.pseudonym
        other = _other(session, presenter, case.order + voice)
        sentences += [s.format(p=presenter, o=other) for s in prose.discussion[voice]]
    presenters = "presenter" if len(session.cases) == 1 else "presenters"
    sentences.append(CLOSINGS[voice][(number + voice) % len(CLOSINGS[voice])].format(presenters=presenters))
    return sentences


def other_text(session: _Session, voice: int) -> str:
    for every, text in OTHER[voice].items():
        if session.meeting.number % every == 0:
            return text.format(o=_other(session, "", voice))
    return ""


def _session(meeting: Meeting) -> _Session:
    cases = list(meeting.cases.select_related("presenter").order_by("order"))
    present = sorted(meeting.attendance.filter(present=True).values_list("participant__pseudonym", flat=True))
    return _Session(meeting=meeting, cases=cases, present=present)


def _texts(note: FieldNote, by_kind_and_case: dict) -> dict[int, str]:
    return {
        section.pk: by_kind_and_case.get((section.kind, section.case_id), "")
        for section in note.sections.all()
    }


def write_submitted(session: _Session, author, voice: int) -> FieldNote:
    """Draft the cases first, then submit with the discussion: a history of two saves and a submission."""
    note = services.note_open(meeting=session.meeting, author=author)
    cases = {(NoteSection.Kind.CASE, c.pk): case_text(session, c, voice) for c in session.cases}
    saved = services.note_save(note=note, base_version=note.version, texts=_texts(note, cases), actor=author)
    full = {
        **cases,
        (NoteSection.Kind.DISCUSSION, None): " ".join(discussion_sentences(session, voice)),
        (NoteSection.Kind.OTHER, None): other_text(session, voice),
    }
    return services.note_submit(note=note, base_version=saved.version, texts=_texts(note, full), actor=author)


def write_draft(session: _Session, author, voice: int) -> FieldNote:
    """A note half written: the first case, and the discussion begun."""
    note = services.note_open(meeting=session.meeting, author=author)
    first = session.cases[0]
    texts = {
        (NoteSection.Kind.CASE, first.pk): case_text(session, first, voice, with_addition=False),
        (NoteSection.Kind.DISCUSSION, None): " ".join(discussion_sentences(session, voice)[:2]),
    }
    services.note_save(note=note, base_version=note.version, texts=_texts(note, texts), actor=author)
    return note


def seed_field_notes(*, groups, coleaders, draft_group) -> None:
    """Both co-leaders' submitted notes for every held session of `groups`,
    except the latest held session of `draft_group`: there the first
    co-leader has a draft and the second has not started."""
    for group in groups:
        held = list(group.meetings.filter(status=Meeting.Status.HELD).order_by("starts_at"))
        for meeting in held:
            session = _session(meeting)
            if group == draft_group and meeting == held[-1]:
                write_draft(session, coleaders[0], voice=0)
                continue
            for voice, author in enumerate(coleaders):
                write_submitted(session, author, voice)
