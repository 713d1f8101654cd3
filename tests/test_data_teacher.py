"""Teacher LLM outputs are checked (Korean, no Han characters, grounded) before use."""

from __future__ import annotations

import json

import httpx

from aldlab.data.facts import Fact
from aldlab.data.teacher import TeacherClient, TeacherStats, check_answer, check_korean, check_question, improve_facts

SOURCE = "MFC는 가스의 질량 유량을 측정하고 내부 제어 밸브로 설정값에 맞게 조절하는 장치이다."


def test_checks() -> None:
    assert check_korean("MFC는 유량을 조절합니다.") is None
    assert check_korean("MFC是流量控制器") == "chinese_characters"
    assert check_korean("MFC controls the mass flow rate of gas") == "not_korean"
    assert check_answer("MFC는 가스 질량 유량을 측정하고 설정값에 맞게 조절하는 장치입니다.", SOURCE) is None
    assert check_answer("MFC는 플라즈마를 발생시키는 고주파 전원 장치로 매일 교체합니다.", SOURCE) == "ungrounded_answer"
    assert check_question("MFC는 무슨 일을 하나요?", "MFC가 뭐야?", ["MFC"]) is None
    assert check_question("이건 무슨 장치야?", "MFC가 뭐야?", ["MFC"]) == "question_lost_subject"


def fake_teacher(replies: list[dict]) -> tuple[TeacherClient, list[dict]]:
    seen: list[dict] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        content = json.dumps(replies[(len(seen) - 1) % len(replies)], ensure_ascii=False)
        return httpx.Response(200, json={"choices": [{"message": {"role": "assistant", "content": content}}]})

    return TeacherClient("http://127.0.0.1:1/v1", "fake", transport=httpx.MockTransport(handler)), seen


def test_improve_facts_keeps_checked_outputs_and_counts_rejects() -> None:
    replies = [
        {"questions": ["MFC는 무슨 일을 하나요?", "MFC是什么?", "그거 뭐야?"], "answer": "MFC는 가스의 질량 유량을 측정하고 설정값에 맞게 조절하는 장치입니다."},
        {"questions": ["MFC 역할 알려줘"], "answer": "MFC는 웨이퍼를 옮기는 로봇 팔로 하루에 한 번 점검합니다."},
    ]
    client, seen = fake_teacher(replies)
    facts = [Fact(f"f{i}", "kb", "definition", ["MFC가 뭐야?"], [(SOURCE, "t-mfc")], ["t-mfc"], ["MFC"], subject="MFC") for i in range(2)]
    stats = TeacherStats()
    improve_facts(facts, {"t-mfc": SOURCE}, client, paraphrases=3, stats=stats)
    assert seen[0]["model"] == "fake" and seen[0]["messages"][0]["role"] == "system"
    assert facts[0].questions == ["MFC가 뭐야?", "MFC는 무슨 일을 하나요?"]
    assert facts[0].answer_parts[0][0].endswith("장치입니다.")
    assert facts[1].answer_parts[0][0] == SOURCE  # ungrounded polish rejected, original kept
    out = stats.to_json()
    assert out["calls"] == 2 and out["accepted_questions"] == 2 and out["accepted_answers"] == 1
    assert out["rejected"] == {"chinese_characters": 1, "question_lost_subject": 1, "ungrounded_answer": 1}


def test_endpoint_path_is_normalised() -> None:
    assert TeacherClient("http://h:8000", "m").endpoint == "http://h:8000/v1/chat/completions"
    assert TeacherClient("http://h:8000/v1/", "m").endpoint == "http://h:8000/v1/chat/completions"


def test_build_with_a_local_fake_teacher_counts_rejections(tmp_path, monkeypatch) -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from aldlab.data.build import build_dataset
    from aldlab.data.config import DataConfig
    from test_data_build import make_kb, read_rows

    auth: list[str | None] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server API
            auth.append(self.headers.get("Authorization"))
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            question = body["messages"][-1]["content"].split("질문: ")[-1].split("\n")[0]
            reply = {"questions": [question.rstrip("?.") + " 좀 알려주세요.", "它是什么?"], "answer": "전혀 관계없는 내용으로 만든 답변입니다."}
            data = json.dumps({"choices": [{"message": {"content": json.dumps(reply, ensure_ascii=False)}}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("ALDLAB_TEACHER_API_KEY", "sk-teacher")  # data.teacher_api_key_env's default
    try:
        kb = make_kb(tmp_path / "kb", n_synthetic=20)
        url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        report = build_dataset(DataConfig(kb=kb, output_dir=tmp_path / "out", train_size=40, eval_size=10, teacher_url=url, teacher_model="fake", teacher_max_facts=10, semantic_model="hash"), progress=False)
    finally:
        server.shutdown()
    teacher = report.stats["teacher"]
    assert teacher["calls"] == 10 and teacher["accepted_questions"] >= 1
    assert set(auth) == {"Bearer sk-teacher"}
    assert "sk-teacher" not in report.stats_path.read_text("utf-8")  # the config records the variable's name only
    assert teacher["rejected"]["chinese_characters"] == 10 and teacher["rejected"]["ungrounded_answer"] >= 1
    rows = read_rows(report.train_path) + read_rows(report.eval_path)
    text = json.dumps(rows, ensure_ascii=False)
    assert "它" not in text and "전혀 관계없는" not in text
