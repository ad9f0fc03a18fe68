import os

from flask import Flask

app = Flask(__name__)


@app.route("/")
def hello():
    return "I will not last long.\n"


if __name__ == "__main__":
    app.run(host="0.0.0.0", port=int(os.environ.get("PORT", "8080")))
