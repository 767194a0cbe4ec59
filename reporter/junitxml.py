"""A JUnit XML writer on the standard library (xml.etree, minidom for the layout): test suites of test cases with
failure, error and skipped results, properties and output, in the dialect CI tools read (the Jenkins/Ant JUnit
schema, tests/fixtures/junit/junit-10.xsd). It writes the layout the junit-xml package wrote (that package is
unmaintained and pulls six), so consumers and golden files see the same document.
"""

from __future__ import annotations

import re
import xml.dom.minidom
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

# Characters XML 1.0 cannot carry (the same ranges junit-xml removed from the finished document).
_ILLEGAL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x84\x86-\x9f\ud800-\udfff\ufdd0-\ufddf\ufffe\uffff"
                      + "".join(f"{chr(p - 1)}{chr(p)}" for p in range(0x1FFFF, 0x110000, 0x10000)) + "]")


@dataclass
class Result:
    """A failure, an error or a skip: a one-line message, a type, and a body."""

    message: Optional[str] = None
    output: Optional[str] = None
    type: Optional[str] = None


@dataclass
class TestCase:
    name: str
    classname: Optional[str] = None
    elapsed_sec: Optional[float] = None
    stdout: Optional[str] = None
    status: Optional[str] = None
    file: Optional[str] = None
    line: Optional[int] = None
    failures: List[Result] = field(default_factory=list)
    errors: List[Result] = field(default_factory=list)
    skipped: List[Result] = field(default_factory=list)

    __test__ = False  # not a pytest class

    def add_failure_info(self, message: Optional[str] = None, output: Optional[str] = None,
                         failure_type: Optional[str] = None) -> None:
        self.failures.append(Result(message, output, failure_type))

    def add_error_info(self, message: Optional[str] = None, output: Optional[str] = None,
                       error_type: Optional[str] = None) -> None:
        self.errors.append(Result(message, output, error_type))

    def add_skipped_info(self, message: Optional[str] = None, output: Optional[str] = None) -> None:
        self.skipped.append(Result(message, output))


@dataclass
class TestSuite:
    name: str
    test_cases: Sequence[TestCase]
    id: Optional[str] = None
    package: Optional[str] = None
    timestamp: Optional[str] = None
    properties: Dict[str, str] = field(default_factory=dict)

    __test__ = False


def _result(parent: ET.Element, tag: str, r: Result) -> None:
    attrs = {"type": r.type or tag}
    if r.message:
        attrs["message"] = r.message
    el = ET.SubElement(parent, tag, attrs)
    if r.output:
        el.text = r.output


def _suite(suite: TestSuite) -> ET.Element:
    cases = suite.test_cases
    el = ET.Element("testsuite", {
        "disabled": "0",
        "errors": str(sum(1 for c in cases if any(e.message or e.output for e in c.errors))),
        "failures": str(sum(1 for c in cases if any(f.message or f.output for f in c.failures))),
        "name": suite.name,
        "skipped": str(sum(1 for c in cases if c.skipped)),
        "tests": str(len(cases)),
        "time": str(sum(c.elapsed_sec for c in cases if c.elapsed_sec)),
    })
    for key in ("id", "package", "timestamp"):
        value = getattr(suite, key)
        if value:
            el.set(key, value)
    if suite.properties:
        props = ET.SubElement(el, "properties")
        for name, value in suite.properties.items():
            ET.SubElement(props, "property", {"name": name, "value": value})
    for case in cases:
        attrs = {"name": case.name}
        if case.elapsed_sec:
            attrs["time"] = f"{case.elapsed_sec:f}"
        for key in ("classname", "status", "file"):
            value = getattr(case, key)
            if value:
                attrs[key] = value
        if case.line:
            attrs["line"] = str(case.line)
        c = ET.SubElement(el, "testcase", attrs)
        for tag, results in (("failure", case.failures), ("error", case.errors)):
            for r in results:
                if r.message or r.output:
                    _result(c, tag, r)
        for r in case.skipped:
            _result(c, "skipped", r)
        if case.stdout:
            ET.SubElement(c, "system-out").text = case.stdout
    return el


def to_xml_report_string(suites: Sequence[TestSuite], prettyprint: bool = True, encoding: str = "utf-8") -> str:
    """The document: <testsuites> with the totals of its suites, tab-indented when `prettyprint`."""
    root = ET.Element("testsuites")
    totals = {"disabled": 0, "errors": 0, "failures": 0, "tests": 0}
    time = 0.0
    for suite in suites:
        el = _suite(suite)
        for key in totals:
            totals[key] += int(el.get(key, 0))
        time += float(el.get("time", 0))
        root.append(el)
    if suites:  # junit-xml wrote no totals for an empty document
        for key, value in totals.items():
            root.set(key, str(value))
        root.set("time", str(time))
    text = _ILLEGAL.sub("", ET.tostring(root, encoding="unicode"))
    if not prettyprint:
        return text
    return xml.dom.minidom.parseString(text.encode("utf-8")).toprettyxml(encoding=encoding).decode(encoding)
