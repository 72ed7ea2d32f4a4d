"""A forking echo server (socketserver.ForkingTCPServer): the parent accepts, a child per
connection echoes until EOF.  Prints "ready" once listening.  argv: host port"""
import socketserver
import sys


class Echo(socketserver.BaseRequestHandler):
    def handle(self):
        while True:
            data = self.request.recv(65536)
            if not data:
                return
            self.request.sendall(data)


class Server(socketserver.ForkingTCPServer):
    allow_reuse_address = True
    request_queue_size = 128
    max_children = 100


if __name__ == "__main__":
    srv = Server((sys.argv[1], int(sys.argv[2])), Echo)
    print("ready", flush=True)
    srv.serve_forever()
