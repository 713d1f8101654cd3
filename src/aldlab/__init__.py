"""aldlab — ALD 공정 지식 베이스를 한국어 전문가 어시스턴트로 만드는 도구 모음.

Stages talk through files on disk: KB -> dataset JSONL -> adapter dir -> eval outputs.
"""

__version__ = "0.1.0"
