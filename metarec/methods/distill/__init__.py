"""Distilled recommenders (family ``distill``): big teacher -> small student, incl. a MiniLM text teacher ->
DistilBERT text student. See ``methods`` for the registered names and docs/distillation.md."""
from metarec.methods.distill.methods import (KDRD, KDRRD, KDSoft, Student, Teacher, TextStudent, TextStudentAlone,
                                           TextTeacher)

__all__ = ["KDRD", "KDRRD", "KDSoft", "Student", "Teacher", "TextStudent", "TextStudentAlone", "TextTeacher"]
