# A Lambda handler, unchanged from what runs on AWS.
def handler(event, context):
    params = (event or {}).get("queryStringParameters") or {}
    name = params.get("name") or (event or {}).get("name") or "world"
    return {
        "statusCode": 200,
        "headers": {"content-type": "text/plain"},
        "body": f"hello, {name} from {context.function_name}\n",
    }
