import os
import time

from flask import Flask

time.sleep(20)  # a slow boot: the health check waits for it
app = Flask(__name__)


@app.route("/")
def hello():
    return "Worth the wait.\n"


if __name__ == "__main__":
    app.run(host="0.0.0.0", port=int(os.environ.get("PORT", "8080")))
