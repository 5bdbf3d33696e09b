/* chat client: written with the chat issue */
