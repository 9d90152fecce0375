"""An independent model of which records a trail delivers, written from
CloudTrail's documentation, used as the oracle of the end-to-end tests."""

# Global service events, as CloudTrail's user guide names them since November
# 2021: events of CloudFront, IAM and STS (and console sign-in) are recorded in
# us-east-1, the region they are created in. A trail sees them only if it sees
# us-east-1 (multi-region, or homed there) and includes global service events.
# Tests that exclude global service events use only these sources, so that
# services whose status differs between sources cannot decide a test.
GLOBAL_SOURCES = {"iam.amazonaws.com", "sts.amazonaws.com", "cloudfront.amazonaws.com", "signin.amazonaws.com"}
GLOBAL_REGION = "us-east-1"


def is_global(r):
    return r.get("eventSource") in GLOBAL_SOURCES and r.get("awsRegion") == GLOBAL_REGION


def category(r):
    if "eventCategory" in r:
        return r["eventCategory"]
    return "Insight" if r.get("eventType") == "AwsCloudTrailInsight" else "Management"


def in_scope(trail, r, org_accounts):
    account = r.get("recipientAccountId", trail["account"])
    if trail.get("org"):
        if account not in org_accounts:
            return False
    elif account != trail["account"]:
        return False
    region = r.get("awsRegion", trail["home_region"])
    if is_global(r) and not trail.get("include_global", True):
        return False
    if trail.get("multi_region"):
        return True
    return region == trail["home_region"]


def basic_matches(selectors, r):
    cat = category(r)
    for s in selectors:
        rw = s.get("ReadWriteType", "All")
        ro = r.get("readOnly")
        if rw == "ReadOnly" and ro is not True:
            continue
        if rw == "WriteOnly" and ro is not False:
            continue
        if cat == "Management":
            if not s.get("IncludeManagementEvents", True):
                continue
            if r.get("eventSource") in s.get("ExcludeManagementEventSources", []):
                continue
            return True
        if cat == "Data":
            for dr in s.get("DataResources", []):
                for res in r.get("resources", []):
                    if res.get("type") != dr["Type"]:
                        continue
                    arn = res.get("ARN", "")
                    for v in dr["Values"]:
                        if dr["Type"] == "AWS::Lambda::Function" and v.count(":") >= 6:
                            if arn == v:
                                return True
                        elif arn.startswith(v):
                            return True
    return False


def field_values(r, field):
    if field == "eventCategory":
        return [category(r)]
    if field == "readOnly":
        v = r.get("readOnly")
        return [] if v is None else [str(v).lower()]
    if field == "resources.type":
        return [x.get("type") for x in r.get("resources", []) if x.get("type")]
    if field == "resources.ARN":
        return [x.get("ARN") for x in r.get("resources", []) if x.get("ARN")]
    if field == "userIdentity.arn":
        v = (r.get("userIdentity") or {}).get("arn")
        return [] if v is None else [v]
    v = r.get(field)
    return [] if v is None else [str(v)]


def field_matches(fs, r):
    values = field_values(r, fs["Field"])
    ok = True
    if "Equals" in fs:
        ok &= any(v in fs["Equals"] for v in values)
    if "StartsWith" in fs:
        ok &= any(v.startswith(p) for v in values for p in fs["StartsWith"])
    if "EndsWith" in fs:
        ok &= any(v.endswith(p) for v in values for p in fs["EndsWith"])
    if "NotEquals" in fs:
        ok &= all(v not in fs["NotEquals"] for v in values)
    if "NotStartsWith" in fs:
        ok &= all(not v.startswith(p) for v in values for p in fs["NotStartsWith"])
    if "NotEndsWith" in fs:
        ok &= all(not v.endswith(p) for v in values for p in fs["NotEndsWith"])
    return ok


def advanced_matches(selectors, r):
    return any(all(field_matches(fs, r) for fs in s["FieldSelectors"]) for s in selectors)


def delivered_by(trail, r, org_accounts):
    if not in_scope(trail, r, org_accounts):
        return False
    if "advanced" in trail:
        return advanced_matches(trail["advanced"], r)
    return basic_matches(trail.get("basic", [{"ReadWriteType": "All", "IncludeManagementEvents": True}]), r)
