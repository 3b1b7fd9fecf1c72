import json

import docopt
import six


def handler(event, context):
    return {
        "statusCode": 200,
        "headers": {"content-type": "application/json"},
        "body": json.dumps({"six": six.__version__, "docopt": docopt.__version__}),
    }
