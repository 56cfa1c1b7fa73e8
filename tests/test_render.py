"""Rendering: Slack escaping in templates and display formats (docs/metrics.md: one decimal, half-up)."""

from bot.render import format as fmt
from bot.render.templates import Trusted, cut_mrkdwn, escape_mrkdwn, link, slack_env


def render(source: str, **ctx) -> str:
    return slack_env().from_string(source).render(**ctx)


def test_every_interpolation_is_mrkdwn_and_json_escaped():
    out = render('{"text": "{{ t }}"}', t='<!channel> & <@U1> "quoted"\n')
    assert out == '{"text": "&lt;!channel&gt; &amp; &lt;@U1&gt; \\"quoted\\"\\n"}'


def test_trusted_and_links():
    assert render("{{ x }}", x=Trusted("<@U123>")) == "<@U123>"
    assert link("https://x.example/a?b=1&c=2", "<fix> & more") == (
        "<https://x.example/a?b=1&amp;c=2|&lt;fix&gt; &amp; more>"
    )
    assert link(None, "<b>") == "&lt;b&gt;"


def test_plain_text_is_cut_not_escaped():
    assert render("{{ t|plain(5) }}", t="a<b>cdefg") == "a<b>…"


def test_mrkdwn_is_never_cut_inside_an_entity_or_a_link():
    assert cut_mrkdwn("ab &amp; cd", 6) == "ab …"
    assert cut_mrkdwn("see <https://x.io/a|PAY-1> now", 12) == "see …"
    assert cut_mrkdwn("<https://x.io|A> &lt;b&gt; tail", 24) == "<https://x.io|A> &lt;b…"
    assert cut_mrkdwn("short", 10) == "short"


def test_escape_only_three_characters():
    assert escape_mrkdwn("a'b\"c*d_e") == "a'b\"c*d_e"


def test_durations_display_half_up():
    assert fmt.duration(7.45) == "7.5 h"  # half-up, not banker's rounding
    assert fmt.duration(23.94) == "23.9 h"
    assert fmt.duration(34) == "1.4 d"  # 34 h = 1.4167 d
    assert fmt.duration(24 * 3.25) == "3.3 d"
    assert fmt.duration(None) == "–"


def test_sparkline_scales_and_marks_gaps():
    assert fmt.sparkline([{"value": 0}, {"value": 7}, {"value": None}, {"value": 3.5}]) == "▁█ ▅"
    assert fmt.sparkline([{"value": None}]) == ""
