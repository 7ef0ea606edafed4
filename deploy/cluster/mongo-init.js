// MongoDB replica set of three members (10.0.0.31-33), each started with
//   mongod --replSet rs0 --bind_ip_all --auth --keyFile /etc/mongo/keyfile
// Run once on 10.0.0.31:  mongosh --file mongo-init.js
// then create the chat user (as the admin user the localhost exception lets you create):
//   db.getSiblingDB("admin").createUser({user: "chat", pwd: "PASSWORD",
//     roles: [{role: "readWrite", db: "convead_chat"}]})
// The chat server creates its indexes at start; the unique ones keep ordering, idempotency and
// one open conversation per visitor across all nodes, without transactions.
rs.initiate({
  _id: "rs0",
  members: [
    { _id: 0, host: "10.0.0.31:27017" },
    { _id: 1, host: "10.0.0.32:27017" },
    { _id: 2, host: "10.0.0.33:27017" },
  ],
});
