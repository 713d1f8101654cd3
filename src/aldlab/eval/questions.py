"""Re-export of `aldlab.evalset`, the question-set parser (this import path is documented in
evalsets/README.md; new code imports `aldlab.evalset`)."""

from aldlab.evalset import DIFFICULTIES, Question, load_questions, parse_question

__all__ = ["DIFFICULTIES", "Question", "load_questions", "parse_question"]
