"""The definition expression language as the local runtime evaluates it."""
from __future__ import annotations

import json

import pytest

from pipelines.local.expressions import (
    EvaluationScope,
    ExpressionError,
    evaluate,
    evaluate_condition,
    property_path_get,
    references_in,
)
from pipelines.local.runtime import DefinitionError, plan_steps, resolve_parameters

EVALUATE_PROPERTIES = {
    "ProcessingOutputConfig": {
        "Outputs": [
            {"OutputName": "evaluation", "S3Output": {"S3Uri": "s3://b/run/eval", "LocalPath": "/opt/ml/processing/output"}}
        ]
    }
}
EVALUATION = {"metrics": {"f1": {"value": 0.42, "baseline": 0.5, "delta": -0.08, "regression": 0.08}}, "list": [{"x": 3}]}


def _scope(files: dict[str, str] | None = None) -> EvaluationScope:
    store = files if files is not None else {"s3://b/run/eval/evaluation.json": json.dumps(EVALUATION)}

    def read(uri: str) -> str:
        if uri not in store:
            raise FileNotFoundError(uri)
        return store[uri]

    return EvaluationScope(
        parameters={"Threshold": 0.4, "Name": "demo", "Count": 3},
        execution={"PipelineExecutionId": "abc123"},
        step_properties={
            "Evaluate": EVALUATE_PROPERTIES,
            "Train": {"ModelArtifacts": {"S3ModelArtifacts": "s3://b/m/model.tar.gz"},
                      "FinalMetricDataList": [{"MetricName": "train_loss", "Value": 0.3}]},
        },
        property_files={"Evaluate": {"Report": {"PropertyFileName": "Report", "OutputName": "evaluation",
                                                 "FilePath": "evaluation.json"}}},
        read_s3_text=read,
    )


def _json_get(path: str) -> dict:
    return {"Std:JsonGet": {"PropertyFile": {"Get": "Steps.Evaluate.PropertyFiles.Report"}, "Path": path}}


def test_get_parameters_execution_and_step_properties() -> None:
    scope = _scope()
    assert evaluate({"Get": "Parameters.Threshold"}, scope) == 0.4
    assert evaluate({"Get": "Execution.PipelineExecutionId"}, scope) == "abc123"
    assert evaluate({"Get": "Steps.Train.ModelArtifacts.S3ModelArtifacts"}, scope) == "s3://b/m/model.tar.gz"
    assert evaluate({"Get": "Steps.Train.FinalMetricDataList['train_loss'].Value"}, scope) == 0.3
    uri = {"Get": "Steps.Evaluate.ProcessingOutputConfig.Outputs['evaluation'].S3Output.S3Uri"}
    assert evaluate(uri, scope) == "s3://b/run/eval"


def test_join_renders_values_as_sagemaker_does() -> None:
    join = {"Std:Join": {"On": "/", "Values": ["s3:/", {"Get": "Parameters.Name"}, {"Get": "Parameters.Count"}, True]}}
    assert evaluate(join, _scope()) == "s3://demo/3/true"
    nested = {"Args": [{"Std:Join": {"On": "", "Values": [{"Get": "Parameters.Count"}]}}, "literal"]}
    assert evaluate(nested, _scope()) == {"Args": ["3", "literal"]}


def test_json_get_reads_the_property_file_from_s3() -> None:
    assert evaluate(_json_get("metrics.f1.value"), _scope()) == 0.42
    assert evaluate(_json_get("list[0].x"), _scope()) == 3


def test_json_get_errors_name_what_is_missing() -> None:
    with pytest.raises(ExpressionError, match="'nope' not found"):
        evaluate(_json_get("metrics.nope.value"), _scope())
    with pytest.raises(ExpressionError, match="PropertyFile 'Report' not found at s3://b/run/eval/evaluation.json"):
        evaluate(_json_get("metrics.f1.value"), _scope(files={}))
    with pytest.raises(ExpressionError, match="unknown parameter 'Missing'"):
        evaluate({"Get": "Parameters.Missing"}, _scope())
    with pytest.raises(ExpressionError, match="has not run"):
        evaluate({"Get": "Steps.Register.ModelPackageArn"}, _scope())


@pytest.mark.parametrize(
    ("kind", "right", "expected"),
    [
        ("GreaterThanOrEqualTo", {"Get": "Parameters.Threshold"}, True),
        ("GreaterThanOrEqualTo", 0.43, False),
        ("GreaterThan", 0.42, False),
        ("LessThanOrEqualTo", "0.42", True),
        ("LessThan", 0.5, True),
        ("Equals", 0.42, True),
    ],
)
def test_comparison_conditions(kind: str, right: object, expected: bool) -> None:
    condition = {"Type": kind, "LeftValue": _json_get("metrics.f1.value"), "RightValue": right}
    assert evaluate_condition(condition, _scope(), "test") is expected


@pytest.mark.parametrize(("kind", "below", "equal", "above"), [
    ("GreaterThan", False, False, True),
    ("GreaterThanOrEqualTo", False, True, True),
    ("LessThan", True, False, False),
    ("LessThanOrEqualTo", True, True, False),
    ("Equals", False, True, False),
])
def test_comparisons_below_at_and_above_the_right_value(kind: str, below: bool, equal: bool, above: bool) -> None:
    """Left 0.42 (read by JsonGet) against a right value just above, equal to and just below it; an equal
    value also as the numeric string Join renders, an integer, and a parameter."""
    left = _json_get("metrics.f1.value")
    scope = _scope()
    cases = [(0.43, below), (0.42, equal), ("0.42", equal), (0.41, above), ("0.41", above)]
    for right, expected in cases:
        assert evaluate_condition({"Type": kind, "LeftValue": left, "RightValue": right}, scope, "t") is expected, right
    count = {"Get": "Parameters.Count"}  # 3, an integer parameter
    for right, expected in [(4, below), (3, equal), (3.0, equal), ("3", equal), (2, above)]:
        condition = {"Type": kind, "LeftValue": count, "RightValue": right}
        assert evaluate_condition(condition, scope, "t") is expected, right


def test_logical_conditions() -> None:
    scope = _scope()
    low = {"Type": "LessThan", "LeftValue": _json_get("metrics.f1.value"), "RightValue": 0.1}
    assert evaluate_condition({"Type": "Not", "Expression": low}, scope, "t") is True
    assert evaluate_condition({"Type": "Or", "Conditions": [low, {**low, "RightValue": 1}]}, scope, "t") is True
    assert evaluate_condition({"Type": "In", "QueryValue": {"Get": "Parameters.Name"}, "Values": ["x", "demo"]}, scope, "t")
    with pytest.raises(ExpressionError, match="needs two numbers"):
        evaluate_condition({"Type": "GreaterThan", "LeftValue": "abc", "RightValue": 1}, scope, "t")


def test_property_path_selects_list_items_by_name() -> None:
    data = {"Channels": [{"ChannelName": "train", "Uri": "a"}, {"ChannelName": "val", "Uri": "b"}]}
    assert property_path_get(data, "Channels['val'].Uri", "t") == "b"
    assert property_path_get(data, "Channels[0].Uri", "t") == "a"
    with pytest.raises(ExpressionError, match="no element named 'test'"):
        property_path_get(data, "Channels['test'].Uri", "t")


def test_plan_follows_references_and_condition_branches() -> None:
    definition = {
        "Steps": [
            {"Name": "A", "Type": "Processing", "Arguments": {}},
            {"Name": "B", "Type": "Training", "Arguments": {"X": {"Get": "Steps.A.ProcessingJobName"}}},
            {"Name": "Gate", "Type": "Condition", "Arguments": {
                "Conditions": [{"Type": "Equals", "LeftValue": {"Get": "Steps.B.TrainingJobName"}, "RightValue": "x"}],
                "IfSteps": [{"Name": "Yes", "Type": "Fail", "Arguments": {}}],
                "ElseSteps": [{"Name": "No", "Type": "Fail", "Arguments": {}}]}},
            {"Name": "C", "Type": "Processing", "Arguments": {}, "DependsOn": ["A"]},
        ]
    }
    plan = plan_steps(definition)
    assert plan["B"].depends_on == {"A"}
    assert plan["Gate"].depends_on == {"B"}
    assert plan["Yes"].guard == ("Gate", True) and plan["No"].guard == ("Gate", False)
    assert plan["C"].depends_on == {"A"}
    assert references_in(definition["Steps"][2]) == {"B"}
    definition["Steps"].append({"Name": "D", "Type": "Processing", "Arguments": {}, "DependsOn": ["Nope"]})
    with pytest.raises(DefinitionError, match="unknown step"):
        plan_steps(definition)


def test_parameters_are_typed_and_checked() -> None:
    definition = {"Parameters": [
        {"Name": "R", "Type": "Integer", "DefaultValue": 8},
        {"Name": "Lr", "Type": "Float", "DefaultValue": 0.1},
        {"Name": "Status", "Type": "String", "DefaultValue": "Pending", "EnumValues": ["Pending", "Approved"]},
    ]}
    assert resolve_parameters(definition, {"R": "4", "Lr": "0.5"}) == {"R": 4, "Lr": 0.5, "Status": "Pending"}
    with pytest.raises(DefinitionError, match="unknown pipeline parameter"):
        resolve_parameters(definition, {"Nope": "1"})
    with pytest.raises(DefinitionError, match="not a valid Integer"):
        resolve_parameters(definition, {"R": "four"})
    with pytest.raises(DefinitionError, match="not one of"):
        resolve_parameters(definition, {"Status": "Maybe"})


def test_errors_name_where_they_happened() -> None:
    """Every error starts with where in the definition it happened, and says what is wrong."""
    scope = _scope()
    cases = [
        ({"A": {"B": {"Get": "Parameters.Missing"}}}, "Step X.A.B: unknown parameter 'Missing'"),
        ({"A": [{"Get": "Execution.Nope"}]}, "Step X.A: unknown execution variable 'Nope'"),
        ({"Std:Join": {"On": "/", "Values": [{"Get": "Steps.Nope.X"}]}},
         "Step X: step 'Nope' has not run, so 'Steps.Nope.X' has no value"),
        ({"Get": "Steps.Evaluate.PropertyFiles.Report"},
         "Step X: a PropertyFile can only be read through Std:JsonGet ('Steps.Evaluate.PropertyFiles.Report')"),
        ({"Get": "Steps.Train.FinalMetricDataList['nope'].Value"},
         "Step X: no element named 'nope' in \"FinalMetricDataList['nope'].Value\""),
        ({"Get": "Steps.Train.ModelArtifacts['Nope']"}, "Step X: key 'Nope' not found in \"ModelArtifacts['Nope']\""),
        ({"Get": "Steps.Train.FinalMetricDataList[1]"}, "Step X: index [1] out of range in 'FinalMetricDataList[1]'"),
        ({"Get": "Steps.Train.ModelArtifacts[0]"}, "Step X: index [0] out of range in 'ModelArtifacts[0]'"),
        ({"Get": "Steps.Train.ModelArtifacts..X"}, "Step X: cannot parse property path 'ModelArtifacts..X' at offset 14"),
        ({"Get": "Other.X"}, "Step X: unsupported reference 'Other.X'"),
        (_json_get("metrics.nope"),
         "Step X (JsonGet 'metrics.nope' in s3://b/run/eval/evaluation.json): property 'nope' not found in 'metrics.nope'"),
        ({"Std:JsonGet": {"PropertyFile": "Steps.Evaluate.Report", "Path": "a"}},
         "Step X: Std:JsonGet needs Steps.<step>.PropertyFiles.<name>, got 'Steps.Evaluate.Report'"),
        ({"Std:JsonGet": {"PropertyFile": "Steps.Train.PropertyFiles.Report", "Path": "a"}},
         "Step X: step 'Train' declares no PropertyFile 'Report'"),
    ]
    for expression, message in cases:
        with pytest.raises(ExpressionError) as raised:
            evaluate(expression, scope, "Step X")
        assert str(raised.value) == message
    unrun = EvaluationScope(parameters={}, execution={}, property_files=scope.property_files)
    with pytest.raises(ExpressionError, match=r"^Step X: step 'Evaluate' has not run, so its PropertyFile 'Report' is unknown$"):
        evaluate(_json_get("metrics"), unrun, "Step X")
    no_reader = EvaluationScope({}, {}, scope.step_properties, scope.property_files)
    with pytest.raises(ExpressionError, match=r"^Step X: no S3 reader to load s3://b/run/eval/evaluation.json$"):
        evaluate(_json_get("metrics"), no_reader, "Step X")
    broken = _scope(files={"s3://b/run/eval/evaluation.json": "{oops"})
    with pytest.raises(ExpressionError, match=r"^Step X: PropertyFile 'Report' at s3://b/run/eval/evaluation.json is not "
                                              r"JSON: Expecting property name"):
        evaluate(_json_get("metrics"), broken, "Step X")


def test_condition_errors_name_where_they_happened() -> None:
    scope = _scope()
    missing = {"Get": "Parameters.Missing"}
    conditions = [
        {"Type": "GreaterThan", "LeftValue": missing, "RightValue": 1},
        {"Type": "GreaterThan", "LeftValue": 1, "RightValue": missing},
        {"Type": "In", "QueryValue": missing, "Values": [1]},
        {"Type": "In", "QueryValue": 1, "Values": [missing]},
        {"Type": "Not", "Expression": {"Type": "Equals", "LeftValue": missing, "RightValue": 1}},
        {"Type": "Or", "Conditions": [{"Type": "Equals", "LeftValue": missing, "RightValue": 1}]},
    ]
    for condition in conditions:
        with pytest.raises(ExpressionError, match=r"^Gate: unknown parameter 'Missing'$"):
            evaluate_condition(condition, scope, "Gate")
    with pytest.raises(ExpressionError, match=r"^Gate: unsupported condition type 'Maybe'$"):
        evaluate_condition({"Type": "Maybe"}, scope, "Gate")
    for left, right in ((None, 1), (1, None), (None, None)):
        with pytest.raises(ExpressionError, match=rf"^Gate: LessThan cannot compare a null value \({left!r} vs {right!r}\)$"):
            evaluate_condition({"Type": "LessThan", "LeftValue": left, "RightValue": right}, scope, "Gate")
    with pytest.raises(ExpressionError, match=r"^Gate: GreaterThan needs two numbers, got 'abc' and 1$"):
        evaluate_condition({"Type": "GreaterThan", "LeftValue": "abc", "RightValue": 1}, scope, "Gate")


def test_expression_forms_sagemaker_allows() -> None:
    scope = _scope()
    # In: values may be expressions; Equals compares strings as strings, and numbers as numbers
    assert evaluate_condition({"Type": "In", "QueryValue": "demo", "Values": [{"Get": "Parameters.Name"}]}, scope, "t")
    assert evaluate_condition({"Type": "Equals", "LeftValue": {"Get": "Parameters.Name"}, "RightValue": "demo"}, scope, "t")
    assert not evaluate_condition({"Type": "Equals", "LeftValue": "demo", "RightValue": "Demo"}, scope, "t")
    assert not evaluate_condition({"Type": "Not", "Expression": {"Type": "Equals", "LeftValue": 1, "RightValue": "1"}},
                                  scope, "t")
    assert not evaluate_condition({"Type": "Or", "Conditions": [{"Type": "Equals", "LeftValue": 1, "RightValue": 2}]},
                                  scope, "t")
    # Join renders booleans as JSON does, lists and objects as JSON
    join = {"Std:Join": {"On": ",", "Values": [False, True, [1, "a"], {"k": None}, 2.5]}}
    assert evaluate(join, scope) == 'false,true,[1, "a"],{"k": null},2.5'
    # a PropertyFile given as its reference string; S3Uri and FilePath joined by exactly one slash
    properties = {"ProcessingOutputConfig": {"Outputs": [{"OutputName": "evaluation",
                                                          "S3Output": {"S3Uri": "s3://b/run/eval/"}}]}}
    files = {"Evaluate": {"Report": {"OutputName": "evaluation", "FilePath": "/evaluation.json"}}}
    read: list[str] = []
    slashes = EvaluationScope({}, {}, {"Evaluate": properties}, files,
                              lambda uri: read.append(uri) or json.dumps(EVALUATION))
    spec = {"Std:JsonGet": {"PropertyFile": "Steps.Evaluate.PropertyFiles.Report", "Path": "metrics.f1.value"}}
    assert evaluate(spec, slashes) == 0.42 and read == ["s3://b/run/eval/evaluation.json"]


def test_property_paths_with_every_kind_of_step() -> None:
    data = {"A": {"key with space": [{"Name": "x", "V": 1}, {"Name": "y", "V": 2}]}, "L": [[5, 6]]}
    assert property_path_get(data, "A['key with space'][1].V", "t") == 2
    assert property_path_get(data, 'A["key with space"][0].V', "t") == 1
    assert property_path_get(data, "A['key with space']['y'].V", "t") == 2
    assert property_path_get(data, "L[0][1]", "t") == 6
    with pytest.raises(ExpressionError, match="index \\[2\\] out of range"):
        property_path_get(data, "L[0][2]", "t")


def test_references_are_the_steps_read() -> None:
    assert references_in([{"Get": "Steps.A.X"}, {"Get": "Steps.B.Y"}, {"Get": "Parameters.C"}]) == {"A", "B"}
    assert references_in({"Get": "Parameters.Steps"}) == set() and references_in({"Get": "Execution.X"}) == set()
    assert references_in({"K": [{"Std:Join": {"On": "", "Values": [{"Get": "Steps.C.Z"}, "Steps.D.W"]}}]}) == {"C"}
    assert references_in({"Get": {"Get": "Steps.E.X"}}) == {"E"}


def test_json_get_finds_the_declared_output_and_file() -> None:
    """Only slashes are trimmed where S3Uri and FilePath meet; an undeclared output is named in the error."""
    outputs = {"ProcessingOutputConfig": {"Outputs": [{"OutputName": "evaluation", "S3Output": {"S3Uri": "s3://b/X/"}}]}}
    read: list[str] = []
    files = {"Evaluate": {"Report": {"OutputName": "evaluation", "FilePath": "/Xreport.json"}}}
    scope = EvaluationScope({}, {}, {"Evaluate": outputs}, files, lambda uri: read.append(uri) or json.dumps(EVALUATION))
    assert evaluate(_json_get("list[0].x"), scope) == 3 and read == ["s3://b/X/Xreport.json"]
    elsewhere = EvaluationScope({}, {}, {"Evaluate": outputs},
                                {"Evaluate": {"Report": {"OutputName": "missing", "FilePath": "r.json"}}}, read.append)
    with pytest.raises(ExpressionError, match=r"^Step X: no element named 'missing' in 'missing'$"):
        evaluate(_json_get("list"), elsewhere, "Step X")
    with pytest.raises(ExpressionError, match=r"^definition: unknown parameter 'Missing'$"):
        evaluate({"Get": "Parameters.Missing"}, scope)  # where defaults to the whole definition


def test_json_path_forms_and_their_errors() -> None:
    """JsonGet's Path: with or without `$.`, negative indexes, `[*]` / `.*` wildcards (a list), quoted keys."""
    from pipelines.local.expressions import json_path_get

    data = {"a": {"b-c": [1, 2, 3], "d": {"x": 1, "y": 2}}, "rows": [{"v": 1}, {"v": 2}]}
    assert json_path_get(data, "$.a['b-c'][-1]", "t") == 3 == json_path_get(data, "a.b-c[2]", "t")
    assert json_path_get(data, "$.rows[*].v", "t") == [1, 2] and json_path_get(data, "a.d.*", "t") == [1, 2]
    assert json_path_get(data, "$", "t") == data
    for path, message in [("a.b-c[-4]", r"^t: index \[-4\] out of range in 'a.b-c\[-4\]'$"),
                          ("a.b-c[0][*]", r"^t: wildcard in 'a.b-c\[0\]\[\*\]' applied to a int$"),
                          ("$.a..d", r"^t: cannot parse JsonPath '\$.a..d' at offset 3$"),
                          ("rows.v", r"^t: property 'v' not found in 'rows.v'$")]:
        with pytest.raises(ExpressionError, match=message):
            json_path_get(data, path, "t")


def test_in_uses_the_equality_of_equals() -> None:
    scope = _scope()
    for query, values, expected in [("1", [1], True), (1, ["1.0"], True), ("a", ["A"], False), (None, [None], True),
                                    (None, [0], False), ({"Get": "Parameters.Count"}, ["3"], True)]:
        equals = any(evaluate_condition({"Type": "Equals", "LeftValue": query, "RightValue": value}, scope, "t")
                     if query is not None and value is not None else query is value for value in values)
        assert evaluate_condition({"Type": "In", "QueryValue": query, "Values": values}, scope, "t") is expected is equals


def test_execution_variables_may_be_read_live() -> None:
    ticks = iter(["t1", "t2"])
    scope = EvaluationScope(parameters={}, execution={"CurrentDateTime": lambda: next(ticks)})
    assert [evaluate({"Get": "Execution.CurrentDateTime"}, scope) for _ in range(2)] == ["t1", "t2"]
