const express = require("express");
const app = express();
app.get("/", (req, res) => res.send("Hello from minifoundry!\n"));
app.listen(process.env.PORT || 8080);
