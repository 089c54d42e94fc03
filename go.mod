module github.com/chatd/chat

go 1.26
